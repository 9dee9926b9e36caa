/**
 * A relay under test: a fresh order database, an outbox worker on a suite-own task queue (real
 * Temporal, real Kafka) and helpers to start relay workflows and write events in transactions.
 */
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import type { Worker } from '@temporalio/worker';
import type { Kafka } from 'kafkajs';
import type { Kysely } from 'kysely';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { OrderDatabase } from '../../db/order/schema';
import type { SharedTables } from '../../lib/shared-tables';
import type { Config } from '../../lib/config';
import type { EventEnvelope } from '../../lib/events';
import { createKafka } from '../../lib/kafka';
import { appendOutboxEvent } from '../../lib/outbox';
import { buildOutboxRelayDependencies, createOutboxWorker } from '../../workers/outbox-worker';
import { outboxRelayWorkflow } from '../../workflows/outbox-relay';
import type { OutboxRelayInput } from '../../workflows/outbox-relay-contract';
import { createTestDatabase, type TestDatabase } from './database';
import { createOwnTopics, producingToOwnTopics, type OwnTopics } from './kafka-probe';
import { testConfig } from './stack';
import { connectTestTemporal, type TestTemporal } from './temporal';

export interface RelayHarness {
  config: Config;
  database: TestDatabase<'order'>;
  db: Kysely<OrderDatabase>;
  /** The client for probes and admin: it reads and writes the topics it is given. */
  kafka: Kafka;
  /** With `ownTopics`: where the relay's events go, its topic router's choice in the suite's own copy. */
  topics?: OwnTopics;
  temporal: TestTemporal;
  registry: Registry;
  /** Every JSON log line the relay wrote. */
  logs: Record<string, unknown>[];
  worker: Worker;
  /** Starts a relay workflow for the test database; returns its workflow id. */
  startRelay: (input?: Partial<OutboxRelayInput>) => Promise<string>;
  close: () => Promise<void>;
}

/** Short relay runs and heartbeats, so failover and retries happen within a test's patience. */
export const TEST_RELAY_INPUT = { runForMs: 3_000, heartbeatTimeoutMs: 3_000, retryMaxIntervalMs: 1_000 } as const;

/**
 * `ownTopics`: the relay publishes to the suite's own copies of the OMS topics (harness.topics), so
 * what the suite writes, dead letters and oversized events included, never reaches the consumers of
 * the stack a developer is running. Without it the relay publishes to the OMS topics, as a worker
 * process of the suite's (test/fixtures/outbox-worker.ts) does.
 */
export async function startRelayHarness(suite: string, overrides: Record<string, string> = {}, { ownTopics = false } = {}): Promise<RelayHarness> {
  const config = testConfig({ OUTBOX_POLL_INTERVAL_MS: '250', OUTBOX_RETRY_BASE_MS: '100', OUTBOX_RETRY_MAX_MS: '1000', ...overrides });
  const database = await createTestDatabase('order');
  const temporal = await connectTestTemporal(suite);
  const kafka = createKafka(config, `test-${suite}`);
  const topics = ownTopics ? await createOwnTopics(kafka, suite) : undefined;
  const registry = new Registry();
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const logger = pino({ level: 'info' }, sink);
  const dependencies = buildOutboxRelayDependencies(config, {
    // The relay runs as the worker's role, as in production.
    sources: { order: { db: database.worker as unknown as Kysely<SharedTables>, listener: { connectionString: database.workerUrl } } },
    kafka: topics ? producingToOwnTopics(kafka, topics) : kafka,
    logger,
    registry,
  });
  const worker = await createOutboxWorker({ connection: temporal.workerConnection, config, identity: `${suite}-worker`, dependencies, taskQueue: temporal.taskQueue });
  const running = worker.run();
  const workflowIds: string[] = [];
  return {
    config,
    database,
    db: database.db,
    kafka,
    topics,
    temporal,
    registry,
    logs,
    worker,
    startRelay: async (input = {}) => {
      const workflowId = `test-outbox-relay-${suite}-${randomUUID()}`;
      await temporal.client.workflow.start(outboxRelayWorkflow, {
        workflowId,
        taskQueue: temporal.taskQueue,
        args: [{ database: 'order', ...TEST_RELAY_INPUT, ...input }],
      });
      workflowIds.push(workflowId);
      return workflowId;
    },
    close: async () => {
      for (const id of workflowIds) await temporal.client.workflow.getHandle(id).terminate('test over').catch(() => undefined);
      worker.shutdown();
      await running;
      await database.destroy();
      await temporal.close();
      await topics?.drop();
    },
  };
}

type OrderEventType = 'ORDER_CONFIRMED' | 'ORDER_FAILED' | 'ORDER_CANCELLATION_REQUESTED';

/** Writes one order event in its own committed transaction (what a service does with its change). */
export async function commitOrderEvent(db: Kysely<OrderDatabase>, orderId: string, eventType: OrderEventType = 'ORDER_CONFIRMED', reason = 'test'): Promise<EventEnvelope> {
  return db.transaction().execute((trx) =>
    eventType === 'ORDER_CONFIRMED'
      ? appendOutboxEvent(trx, { eventType, aggregateId: orderId, payload: { orderId }, correlationId: orderId })
      : appendOutboxEvent(trx, { eventType, aggregateId: orderId, payload: { orderId, reason }, correlationId: orderId }),
  );
}
