/**
 * The invariant checker (infra/ops/invariants.ts, `./oms check`) on a whole small system: the saga
 * harness's three databases and worker, an outbox relay for each database and a timeline consumer,
 * all real. After real sagas (paid, declined, cancelled) every invariant holds; then each kind of
 * damage a fault could leave behind is made by hand and named by the checker, and `./oms check`
 * exits 1 listing it.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomUUID } from 'node:crypto';
import type { Worker } from '@temporalio/worker';
import type { Admin } from 'kafkajs';
import type { Kysely } from 'kysely';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SharedTables } from '../../lib/shared-tables';
import { checkInvariants, checkInvariantsSettled, type InvariantSources } from '../../infra/ops/invariants';
import { createKafka } from '../../lib/kafka';
import { createConsumerMetrics } from '../../workers/outbox-relay/metrics';
import { ORDER_TIMELINE_TOPICS, startOrderTimelineConsumer, type RunningConsumer } from '../../workers/order-events-consumer';
import { buildOutboxRelayDependencies, createOutboxWorker } from '../../workers/outbox-worker';
import { outboxRelayWorkflow } from '../../workflows/outbox-relay';
import { positionGroupAtEnd } from '../helpers/kafka-probe';
import { testConfig } from '../helpers/stack';
import { connectTestTemporal, type TestTemporal } from '../helpers/temporal';
import { createCustomer, createProduct, placeOrder, startCancelOrder, startCreateOrder, startSagaHarness, type SagaHarness } from '../workflows/saga-harness';

const execFileAsync = promisify(execFile);

describe('invariant checker', () => {
  let harness: SagaHarness;
  let relayTemporal: TestTemporal;
  let relayWorker: Worker;
  let relayRun: Promise<void>;
  let consumer: RunningConsumer;
  let admin: Admin;
  let sources: InvariantSources;
  const relayIds: string[] = [];

  beforeAll(async () => {
    harness = await startSagaHarness('invariants');
    const config = testConfig({ OUTBOX_POLL_INTERVAL_MS: '250', OUTBOX_RETRY_BASE_MS: '100', OUTBOX_RETRY_MAX_MS: '1000' });
    const kafka = createKafka(config, 'test-invariants');
    const logger = pino({ level: 'silent' });
    // The relays run on a task queue of their own, beside the saga worker's.
    relayTemporal = await connectTestTemporal('invariants-relay');
    // Each relay reads its database as the worker does (oms_worker).
    const outbox = (database: { worker: unknown; workerUrl: string }) => ({
      db: database.worker as Kysely<SharedTables>,
      listener: { connectionString: database.workerUrl },
    });
    const dependencies = buildOutboxRelayDependencies(config, {
      sources: { order: outbox(harness.order), product: outbox(harness.product.database), payment: outbox(harness.payment.database) },
      kafka,
      logger,
      registry: new Registry(),
    });
    relayWorker = await createOutboxWorker({ connection: relayTemporal.workerConnection, config, identity: 'invariants-relay', dependencies, taskQueue: relayTemporal.taskQueue });
    relayRun = relayWorker.run();
    for (const database of ['order', 'product', 'payment'] as const) {
      const workflowId = `test-invariants-relay-${database}-${randomUUID()}`;
      await relayTemporal.client.workflow.start(outboxRelayWorkflow, {
        workflowId,
        taskQueue: relayTemporal.taskQueue,
        args: [{ database, runForMs: 60_000, heartbeatTimeoutMs: 5_000, retryMaxIntervalMs: 1_000 }],
      });
      relayIds.push(workflowId);
    }
    // The timeline consumer of this system: its own group, from the topics' current end.
    const groupId = `test-invariants-timeline-${randomUUID()}`;
    await positionGroupAtEnd(kafka, groupId, ORDER_TIMELINE_TOPICS);
    consumer = await startOrderTimelineConsumer({ kafka, db: harness.order.worker, logger, metrics: createConsumerMetrics(new Registry()), groupId, fromBeginning: false });
    admin = kafka.admin();
    await admin.connect();
    sources = {
      orderDb: harness.order.db,
      productDb: harness.product.db,
      paymentDb: harness.payment.db,
      temporal: harness.temporal.client,
      kafka: admin,
      timeline: { groupId, topics: ORDER_TIMELINE_TOPICS },
      graceSeconds: 0,
      sagaBoundSeconds: 600,
    };
  });

  afterAll(async () => {
    await admin?.disconnect();
    await consumer?.stop();
    for (const id of relayIds) await relayTemporal.client.workflow.getHandle(id).terminate('test over').catch(() => undefined);
    relayWorker?.shutdown();
    await relayRun;
    await relayTemporal?.close();
    await harness?.close();
  });

  it('finds nothing wrong once real sagas (paid, declined, cancelled) have settled', async () => {
    const customerId = await createCustomer(harness, { balance: '100.00' });
    const productId = await createProduct(harness, 5, '10.00');
    const paid = await placeOrder(harness, { customerId, lines: [{ productId, quantity: 2, unitPriceMinor: 1000 }] });
    const declined = await placeOrder(harness, { customerId, lines: [{ productId, quantity: 50, unitPriceMinor: 1000 }] });
    const cancelled = await placeOrder(harness, { customerId, lines: [{ productId, quantity: 1, unitPriceMinor: 1000 }] });
    for (const input of [paid, declined, cancelled]) {
      const handle = await startCreateOrder(harness, input);
      await handle.result().catch(() => undefined);
    }
    await (await startCancelOrder(harness, { orderId: cancelled.orderId, reason: 'changed my mind' })).result();

    expect(await checkInvariantsSettled(sources, 60)).toEqual([]);
    // The timeline really has the events it was checked against.
    const timeline = await harness.order.db.selectFrom('order_events').select('event_type').where('order_id', '=', paid.orderId).execute();
    expect(timeline.map((row) => row.event_type)).toEqual(expect.arrayContaining(['STOCK_RESERVED', 'PAYMENT_RESERVED', 'STOCK_CONFIRMED', 'ORDER_PAID']));
  });

  it('names each kind of damage a fault could leave: stock, money, a PAID order without its payment, an undelivered event, an order without its saga', async () => {
    const customerId = await createCustomer(harness, { balance: '50.00' });
    const productId = await createProduct(harness, 5, '10.00');
    const input = await placeOrder(harness, { customerId, lines: [{ productId, quantity: 1, unitPriceMinor: 1000 }] });
    await (await startCreateOrder(harness, input)).result();
    expect(await checkInvariantsSettled(sources, 60)).toEqual([]);

    // A unit appears from nowhere; money leaves an account without a capture; the order's capture
    // is refunded behind its back; an event is written but never relayed; an order has no saga.
    await harness.product.db.updateTable('products').set((eb) => ({ stock_quantity: eb('stock_quantity', '+', 1) })).where('id', '=', productId).execute();
    await harness.payment.db.updateTable('customer_accounts').set((eb) => ({ balance_minor: eb('balance_minor', '-', 100) })).where('customer_id', '=', customerId).execute();
    await harness.payment.db.updateTable('payments').set({ refunded_minor: 1000, status: 'REFUNDED' }).where('order_id', '=', input.orderId).execute();
    const orphan = await placeOrder(harness, { customerId, lines: [{ productId, quantity: 1, unitPriceMinor: 1000 }] });
    // Failed once and due again in an hour: the relay leaves it alone, as it does a row whose publishing keeps failing.
    await harness.order.db
      .insertInto('outbox_events')
      .values({
        event_id: randomUUID(),
        aggregate_type: 'ORDER',
        aggregate_id: orphan.orderId,
        event_type: 'ORDER_CONFIRMED',
        payload: JSON.stringify({ payload: { orderId: orphan.orderId } }),
        correlation_id: orphan.orderId,
        retry_count: 1,
        next_attempt_at: new Date(Date.now() + 3_600_000),
      })
      .execute();

    const violations = await checkInvariants(sources);
    const found = violations.map((violation) => [violation.check, violation.subject]);
    expect(found).toEqual(
      expect.arrayContaining([
        ['stock-conservation', expect.stringContaining(productId)],
        ['money-conservation', `account ${customerId}`],
        ['paid-settled', `order ${input.orderId} (PAID)`],
        ['outbox-delivered', 'order_db'],
        ['saga-exists', `order ${orphan.orderId} (PENDING)`],
      ]),
    );

    // The command operators run says the same and exits 1.
    // Asynchronously: the saga worker runs in this process and must not be frozen meanwhile.
    const run = await execFileAsync('npx', ['--no-install', 'tsx', 'infra/ops/check.ts', '--grace', '0'], {
      encoding: 'utf8',
      env: {
        ...process.env,
        ORDER_DATABASE_URL: harness.order.url,
        PRODUCT_DATABASE_URL: harness.product.database.url,
        PAYMENT_DATABASE_URL: harness.payment.database.url,
      },
    }).then(
      ({ stdout, stderr }) => ({ status: 0, stdout, stderr }),
      (error: { code: number; stdout: string; stderr: string }) => ({ status: error.code, stdout: error.stdout, stderr: error.stderr }),
    );
    expect(run.status, run.stderr).toBe(1);
    expect(run.stdout).toMatch(new RegExp(`stock-conservation +product ${productId}`));
    expect(run.stdout).toMatch(new RegExp(`paid-settled +order ${input.orderId}`));
    expect(run.stdout).toMatch(/\d+ violation\(s\)/);
  });
});
