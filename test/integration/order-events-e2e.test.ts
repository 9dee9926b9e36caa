/**
 * One order's events, all the way: the services write them to their outboxes with each change, the
 * outbox relays (one workflow per database, as the worker runs them) publish them to Kafka, the
 * timeline consumer applies them to order_db, and GET /orders/:id/events shows them. Everything is
 * real and the suite's own: three services on fresh databases, a saga worker and an outbox worker on
 * a private task queue, a timeline consumer in a new group.
 */
import { randomUUID } from 'node:crypto';
import type { Worker } from '@temporalio/worker';
import type { Kysely } from 'kysely';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJsonHttpClient } from '../../activities/http';
import type { SharedTables } from '../../lib/shared-tables';
import { createKafka } from '../../lib/kafka';
import { createConsumerMetrics } from '../../workers/outbox-relay/metrics';
import { buildOutboxRelayDependencies, createOutboxWorker } from '../../workers/outbox-worker';
import { ORDER_TIMELINE_TOPICS, startOrderTimelineConsumer, type RunningConsumer } from '../../workers/order-events-consumer';
import { createSagaWorker } from '../../workers/saga-worker';
import { cancelOrderWorkflowId, createOrderWorkflowId, tccPaymentWorkflowId } from '../../workflows/order-contract';
import { outboxRelayWorkflow } from '../../workflows/outbox-relay';
import { OUTBOX_DATABASES } from '../../workflows/outbox-relay-contract';
import { eventually, positionGroupAtEnd } from '../helpers/kafka-probe';
import { TEST_RELAY_INPUT } from '../helpers/outbox-relay';
import { startTestOrderService, type TestOrderService } from '../helpers/order-service';
import { startTestPaymentService, type TestPaymentService } from '../helpers/payment-service';
import { createTestProduct, startTestProductService, type TestProductService } from '../helpers/product-service';
import { testConfig } from '../helpers/stack';
import { connectTestTemporal, type TestTemporal } from '../helpers/temporal';

describe("an order's events from the outbox to GET /orders/:id/events, and the request id that ties them together", () => {
  let temporal: TestTemporal;
  let product: TestProductService;
  let payment: TestPaymentService;
  let order: TestOrderService;
  let sagaWorker: Worker;
  let outboxWorker: Worker;
  const runs: Promise<void>[] = [];
  let consumer: RunningConsumer;
  const relayIds: string[] = [];

  beforeAll(async () => {
    const config = testConfig({ OUTBOX_POLL_INTERVAL_MS: '250' });
    temporal = await connectTestTemporal('order-events-e2e');
    [product, payment] = await Promise.all([startTestProductService(), startTestPaymentService()]);
    order = await startTestOrderService({ productUrl: product.url, temporal, taskQueue: temporal.taskQueue });
    const http = { credential: config.WORKER_SERVICE_TOKEN, timeoutMs: config.HTTP_CLIENT_TIMEOUT_MS };
    sagaWorker = await createSagaWorker({
      connection: temporal.workerConnection,
      config,
      identity: `order-events-e2e-saga-${randomUUID()}`,
      taskQueue: temporal.taskQueue,
      dependencies: {
        orderDb: order.workerDb,
        products: createJsonHttpClient({ ...http, baseUrl: product.url }),
        payments: createJsonHttpClient({ ...http, baseUrl: payment.url }),
      },
    });
    const kafka = createKafka(config, 'test-order-events-e2e');
    const relayQueue = `${temporal.taskQueue}-outbox`;
    outboxWorker = await createOutboxWorker({
      connection: temporal.workerConnection,
      config,
      identity: `order-events-e2e-outbox-${randomUUID()}`,
      taskQueue: relayQueue,
      dependencies: buildOutboxRelayDependencies(config, {
        // The relays run as the worker's role, as in production.
        sources: {
          order: { db: order.workerDb as unknown as Kysely<SharedTables>, listener: { connectionString: order.databaseUrl } },
          product: { db: product.database.worker as unknown as Kysely<SharedTables>, listener: { connectionString: product.database.workerUrl } },
          payment: { db: payment.database.worker as unknown as Kysely<SharedTables>, listener: { connectionString: payment.database.workerUrl } },
        },
        kafka,
        logger: pino({ level: 'silent' }),
        registry: new Registry(),
      }),
    });
    runs.push(sagaWorker.run(), outboxWorker.run());
    // A new group, at the current end of the topics: only what this suite's relays publish from now on.
    const groupId = `test-order-events-e2e-${randomUUID()}`;
    await positionGroupAtEnd(kafka, groupId, ORDER_TIMELINE_TOPICS);
    consumer = await startOrderTimelineConsumer({ kafka, db: order.workerDb, logger: pino({ level: 'silent' }), metrics: createConsumerMetrics(new Registry()), groupId, fromBeginning: false });
    for (const database of OUTBOX_DATABASES) {
      const workflowId = `test-outbox-relay-e2e-${database}-${randomUUID()}`;
      await temporal.client.workflow.start(outboxRelayWorkflow, { workflowId, taskQueue: relayQueue, args: [{ database, ...TEST_RELAY_INPUT }] });
      relayIds.push(workflowId);
    }
  });
  afterAll(async () => {
    for (const id of relayIds) await temporal.client.workflow.getHandle(id).terminate('test over').catch(() => undefined);
    await consumer?.stop();
    for (const worker of [sagaWorker, outboxWorker]) if (worker?.getState() === 'RUNNING') worker.shutdown();
    await Promise.all(runs);
    await order?.close();
    await Promise.all([product?.close(), payment?.close()]);
    await temporal?.close();
  });

  it('shows every event of a paid order, from all three services, once each and in the order they happened', async () => {
    const created = await fetch(new URL('/customers', order.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...order.operator },
      body: JSON.stringify({ name: 'Timeline Customer', email: `timeline-${randomUUID()}@example.com`, status: 'ACTIVE' }),
    });
    expect(created.status).toBe(201);
    const { id: customerId } = (await created.json()) as { id: string };
    const account = await fetch(new URL('/accounts', payment.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...payment.operator },
      body: JSON.stringify({ customerId, balance: '100.00', currency: 'USD' }),
    });
    expect(account.status).toBe(201);
    const productId = await createTestProduct(product, { stockQuantity: 5, price: '12.50' });

    const placed = await fetch(new URL('/orders', order.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(await order.asCustomer(customerId)), 'idempotency-key': `timeline-${randomUUID()}` },
      body: JSON.stringify({ items: [{ productId, quantity: 2 }] }),
    });
    expect(placed.status).toBe(202);
    const { id: orderId } = (await placed.json()) as { id: string };

    const expected = ['ORDER_CREATED', 'STOCK_RESERVED', 'PAYMENT_RESERVED', 'STOCK_CONFIRMED', 'PAYMENT_COMPLETED', 'ORDER_CONFIRMED', 'ORDER_PAID'];
    type Timeline = { orderId: string; events: { eventId: string; eventType: string; topic: string; occurredAt: string }[] };
    const timeline = await eventually(async () => {
      const response = await fetch(new URL(`/orders/${orderId}/events`, order.url), { headers: order.operator });
      if (response.status !== 200) return undefined;
      const body = (await response.json()) as Timeline;
      return body.events.length >= expected.length ? body : undefined;
    }, 90_000, `the timeline of order ${orderId} to hold its ${expected.length} events`, 250);

    expect(timeline.orderId).toBe(orderId);
    // The two tries run in parallel: their relative order is whichever committed first.
    const types = timeline.events.map((event) => event.eventType);
    expect([...types].sort()).toEqual([...expected].sort());
    expect(types[0]).toBe('ORDER_CREATED');
    expect(types.slice(3)).toEqual(['STOCK_CONFIRMED', 'PAYMENT_COMPLETED', 'ORDER_CONFIRMED', 'ORDER_PAID']);
    expect(new Set(timeline.events.map((event) => event.eventId)).size).toBe(expected.length);
    const occurred = timeline.events.map((event) => event.occurredAt);
    expect(occurred).toEqual([...occurred].sort());
    expect(timeline.events.find((event) => event.eventType === 'PAYMENT_COMPLETED')!.topic).toBe('oms.payments.events');

    // Each event is the very row its service wrote to its outbox, now PUBLISHED.
    const outboxIds = [
      ...(await order.db.selectFrom('outbox_events').select(['event_id', 'status']).where('aggregate_id', '=', orderId).execute()),
      ...(await product.db.selectFrom('outbox_events').select(['event_id', 'status']).where('aggregate_id', '=', orderId).execute()),
      ...(await payment.db.selectFrom('outbox_events').select(['event_id', 'status']).where('event_type', 'in', ['PAYMENT_RESERVED', 'PAYMENT_COMPLETED']).execute()),
    ];
    for (const event of timeline.events) expect(outboxIds, event.eventType).toContainEqual({ event_id: event.eventId, status: 'PUBLISHED' });
  });

  it("one request id follows an order through every service, Kafka and Temporal, and its cancel's id follows the cancel", async () => {
    const customerId = await customerWithBalance('100.00');
    const productId = await createTestProduct(product, { stockQuantity: 5, price: '10.00' });
    const placeId = `place-${randomUUID()}`;
    const placed = await fetch(new URL('/orders', order.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(await order.asCustomer(customerId)), 'x-request-id': placeId },
      body: JSON.stringify({ items: [{ productId, quantity: 1 }] }),
    });
    expect(placed.status).toBe(202);
    expect(placed.headers.get('x-request-id')).toBe(placeId);
    const { id: orderId } = (await placed.json()) as { id: string };
    // Events from all three services, each carrying the id: written by the order service, by the
    // saga's activities in the worker, and by the participants the activities called.
    const paidEvents = await timelineWith(orderId, ['ORDER_CREATED', 'STOCK_RESERVED', 'PAYMENT_RESERVED', 'STOCK_CONFIRMED', 'PAYMENT_COMPLETED', 'ORDER_CONFIRMED', 'ORDER_PAID']);
    expect(paidEvents).toHaveLength(7);
    for (const event of paidEvents) expect({ type: event.eventType, correlationId: event.correlationId }).toEqual({ type: event.eventType, correlationId: placeId });
    // The saga and its payment child keep it in their memo (what the Web UI shows).
    for (const workflowId of [createOrderWorkflowId(orderId), tccPaymentWorkflowId(orderId)]) {
      expect((await temporal.client.workflow.getHandle(workflowId).describe()).memo, workflowId).toMatchObject({ correlationId: placeId });
    }

    const cancelId = `cancel-${randomUUID()}`;
    const cancelled = await fetch(new URL(`/orders/${orderId}/cancel`, order.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(await order.asCustomer(customerId)), 'x-request-id': cancelId },
      body: JSON.stringify({ reason: 'changed my mind' }),
    });
    expect(cancelled.status).toBe(202);
    expect(cancelled.headers.get('x-request-id')).toBe(cancelId);
    // The cancel restocks the units and refunds the capture.
    const all = await timelineWith(orderId, ['STOCK_RELEASED', 'PAYMENT_REFUNDED', 'ORDER_CANCELLED']);
    const cancelEvents = all.filter((event) => !paidEvents.some((paid) => paid.eventId === event.eventId));
    expect(cancelEvents.map((event) => event.eventType)).toEqual(expect.arrayContaining(['STOCK_RELEASED', 'PAYMENT_REFUNDED', 'ORDER_CANCELLED']));
    for (const event of cancelEvents) expect({ type: event.eventType, correlationId: event.correlationId }).toEqual({ type: event.eventType, correlationId: cancelId });
    expect((await temporal.client.workflow.getHandle(cancelOrderWorkflowId(orderId)).describe()).memo).toMatchObject({ correlationId: cancelId });
  });

  it('replaces a request id it cannot use with one of its own, and names it in the answer', async () => {
    for (const unusable of ['has spaces in it', 'x'.repeat(101), 'short']) {
      const response = await fetch(new URL(`/orders/${randomUUID()}`, order.url), { headers: { ...order.operator, 'x-request-id': unusable } });
      expect(response.status).toBe(404);
      expect(response.headers.get('x-request-id')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    }
  });

  async function customerWithBalance(balance: string): Promise<string> {
    const created = await fetch(new URL('/customers', order.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...order.operator },
      body: JSON.stringify({ name: 'Correlated Customer', email: `correlated-${randomUUID()}@example.com`, status: 'ACTIVE' }),
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    const account = await fetch(new URL('/accounts', payment.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...payment.operator },
      body: JSON.stringify({ customerId: id, balance, currency: 'USD' }),
    });
    expect(account.status).toBe(201);
    return id;
  }

  type TimelineEvent = { eventId: string; eventType: string; correlationId: string | null };

  /** The order's timeline once it holds an event of each of `eventTypes`. */
  async function timelineWith(orderId: string, eventTypes: string[]): Promise<TimelineEvent[]> {
    return eventually(async () => {
      const response = await fetch(new URL(`/orders/${orderId}/events`, order.url), { headers: order.operator });
      if (response.status !== 200) return undefined;
      const { events } = (await response.json()) as { events: TimelineEvent[] };
      return eventTypes.every((type) => events.some((event) => event.eventType === type)) ? events : undefined;
    }, 90_000, `the timeline of order ${orderId} to show ${eventTypes.join(', ')}`, 250);
  }
});
