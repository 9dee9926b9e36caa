/**
 * The worker's supervisors (workers/supervision.ts): a relay workflow that was terminated gets a new
 * run at the next pass, and a timeline consumer that stopped without being asked is started again;
 * each restart is counted with its reason.
 */
import { randomUUID } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKafka } from '../../lib/kafka';
import { createConsumerMetrics } from '../../workers/outbox-relay/metrics';
import { ORDER_TIMELINE_TOPICS, startOrderTimelineConsumer } from '../../workers/order-events-consumer';
import { startOutboxRelays } from '../../workers/outbox-worker';
import { createSupervisionMetrics, superviseConsumer, superviseOutboxRelays } from '../../workers/supervision';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { eventually, positionGroupAtEnd } from '../helpers/kafka-probe';
import { TEST_RELAY_INPUT } from '../helpers/outbox-relay';
import { testConfig } from '../helpers/stack';
import { connectTestTemporal, type TestTemporal } from '../helpers/temporal';

const logger = pino({ level: 'silent' });

async function restartsOf(metrics: ReturnType<typeof createSupervisionMetrics>) {
  return (await metrics.restarts.get()).values.map(({ labels, value }) => ({ ...labels, value }));
}

describe('relay workflow supervision', () => {
  let temporal: TestTemporal;
  beforeAll(async () => {
    temporal = await connectTestTemporal('supervision');
  });
  afterAll(() => temporal?.close());

  it('starts a new run of a relay workflow that was terminated', async () => {
    const prefix = `test-supervision-${randomUUID()}`;
    // No worker polls this queue: the relay stays RUNNING until terminated, which is all the supervisor looks at.
    const relays = { databases: ['order'] as const, taskQueue: temporal.taskQueue, input: TEST_RELAY_INPUT, workflowIdOf: (db: string) => `${prefix}-${db}` };
    const [workflowId] = await startOutboxRelays(temporal.client, relays);
    const handle = temporal.client.workflow.getHandle(workflowId!);
    const firstRun = (await handle.describe()).runId;
    const metrics = createSupervisionMetrics(new Registry());
    const supervisor = superviseOutboxRelays({ client: temporal.client, intervalMs: 3_600_000, logger, metrics, relays });
    try {
      // Running: the pass leaves it alone.
      await supervisor.check();
      expect((await handle.describe()).runId).toBe(firstRun);
      expect(await restartsOf(metrics)).toEqual([]);

      await handle.terminate('an operator terminated it by mistake');
      await supervisor.check();
      const now = await handle.describe();
      expect(now.status.name).toBe('RUNNING');
      expect(now.runId).not.toBe(firstRun);
      expect(await restartsOf(metrics)).toEqual([{ component: 'outbox-relay-order_db', reason: 'terminated', value: 1 }]);
    } finally {
      await supervisor.stop();
      await handle.terminate('test over').catch(() => undefined);
    }
  });
});

describe('timeline consumer supervision', () => {
  let database: TestDatabase<'order'>;
  let kafka: Kafka;
  beforeAll(async () => {
    database = await createTestDatabase('order');
    kafka = createKafka(testConfig(), 'test-supervision');
  });
  afterAll(() => database?.destroy());

  it('starts the consumer again when it stops without being asked, and records its last success', async () => {
    const group = `test-supervision-${randomUUID()}`;
    await positionGroupAtEnd(kafka, group, ORDER_TIMELINE_TOPICS);
    const metrics = createSupervisionMetrics(new Registry());
    const consumerMetrics = createConsumerMetrics(new Registry());
    const supervisor = superviseConsumer({
      group,
      start: () => startOrderTimelineConsumer({ kafka, db: database.worker, logger, metrics: consumerMetrics, groupId: group, fromBeginning: false }),
      intervalMs: 3_600_000,
      stallMs: 3_600_000,
      logger,
      metrics,
      consumerMetrics,
    });
    try {
      await supervisor.started;
      const first = supervisor.current()!;
      expect(first).toBeDefined();
      const started = (await consumerMetrics.lastSuccess.get()).values.find((value) => value.labels.group === group)?.value;
      expect(started).toBeGreaterThan(0);

      // Something disconnects it behind the supervisor's back (what kafkajs does after a crash it does not retry).
      await first.consumer.disconnect();
      const second = await eventually(() => {
        const current = supervisor.current();
        return current && current !== first ? current : undefined;
      }, 60_000, 'a new consumer');
      expect(second).not.toBe(first);
      expect(await restartsOf(metrics)).toEqual([{ component: `consumer-${group}`, reason: 'stopped', value: 1 }]);
    } finally {
      await supervisor.stop();
    }
  });
});
