/**
 * The order timeline consumer on the real broker and a fresh order database: each event applied
 * once however often it arrives, bad messages dead-lettered (never dropped, never blocking the
 * partition), and GET /orders/:id/events showing the result in the order things happened.
 *
 * Every suite here reads and writes topics of its own (createOwnTopics): its malformed messages
 * and dead letters never reach the consumers of the stack a developer is running.
 */
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import type { Admin, Kafka, Producer } from 'kafkajs';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { OrderDatabase } from '../../db/order/schema';
import type { EventEnvelope, EventType } from '../../lib/events';
import { buildServiceApp, type ServiceApp } from '../../services/shared/http/app';
import { createAuthenticator } from '../../services/shared/http/auth';
import { consumerGroupLag, createKafka } from '../../lib/kafka';
import { createMetricsRegistry } from '../../lib/metrics';
import { createConsumerMetrics } from '../../workers/outbox-relay/metrics';
import { orderTimelineRoutes, recordTimelineEvents } from '../../services/order/timeline';
import { startOrderTimelineConsumer, type RunningConsumer } from '../../workers/order-events-consumer';
import { asOperator } from '../helpers/auth';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { createOwnTopics, deliverAsRelay, eventually, positionGroupAtEnd, startKafkaProbe, type KafkaProbe, type OwnTopics } from '../helpers/kafka-probe';
import { testConfig } from '../helpers/stack';

const AGGREGATE_TYPES: Record<string, string> = { ORDER: 'ORDER', STOCK: 'STOCK_RESERVATION', PAYMENT: 'PAYMENT' };

function envelope(eventType: EventType, orderId: string, payload: Record<string, unknown>, timestamp = new Date().toISOString()): EventEnvelope {
  return {
    eventId: randomUUID(),
    eventType,
    aggregateType: AGGREGATE_TYPES[eventType.split('_')[0]!]!,
    aggregateId: orderId,
    timestamp,
    version: 1,
    correlationId: orderId,
    payload: { orderId, ...payload },
  };
}

describe('order timeline consumer', () => {
  let database: TestDatabase<'order'>;
  let kafka: Kafka;
  let producer: Producer;
  let consumer: RunningConsumer;
  let dlq: KafkaProbe;
  let registry: Registry;
  let lagAdmin: Admin;
  let app: ServiceApp;
  let own: OwnTopics;
  const logs: Record<string, unknown>[] = [];
  const ours = new Set<string>();
  const groupId = `test-timeline-${randomUUID()}`;

  /** Sends as the relay does, to the suite's own copy of the event's topic. */
  async function deliver(event: EventEnvelope, value?: string): Promise<void> {
    ours.add(event.aggregateId);
    await deliverAsRelay(producer, event, value, own.topicFor(event.eventType));
  }

  const outcomeCount = async (outcome: string) => {
    const metric = await registry.getSingleMetric('oms_events_processed_total')!.get();
    return metric.values.filter((v) => v.labels.outcome === outcome).reduce((sum, v) => sum + v.value, 0);
  };
  /** The value of one series of the consumer's registry (0 when it does not exist yet). */
  const metricValue = async (name: string, labels: Record<string, string>) => {
    const metric = await registry.getSingleMetric(name)!.get();
    return metric.values.filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want)).reduce((sum, v) => sum + v.value, 0);
  };
  const timelineRows = (orderId: string) => database.db.selectFrom('order_events').selectAll().where('order_id', '=', orderId).execute();

  beforeAll(async () => {
    const config = testConfig();
    database = await createTestDatabase('order');
    kafka = createKafka(config, 'test-timeline');
    own = await createOwnTopics(kafka, 'timeline');
    producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    registry = new Registry();
    lagAdmin = kafka.admin();
    await lagAdmin.connect();
    dlq = await startKafkaProbe(kafka, [own.deadLetters], (m) => m.key !== null && ours.has(m.key) && m.headers['dlq-source'] === `consumer:${groupId}`);
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    await positionGroupAtEnd(kafka, groupId, own.events);
    consumer = await startOrderTimelineConsumer({
      kafka,
      db: database.worker,
      logger: pino({ level: 'info' }, sink),
      metrics: createConsumerMetrics(registry, [{ group: groupId, measure: () => consumerGroupLag(lagAdmin, groupId, own.events) }]),
      groupId,
      maxAttempts: 3,
      retryDelayMs: 20,
      fromBeginning: false,
      topics: own.events,
      deadLetterTopic: own.deadLetters,
    });
    const appConfig = testConfig({ RATE_LIMIT_ENABLED: 'false' });
    app = await buildServiceApp({
      service: 'order',
      description: 'timeline test',
      logger: false,
      metrics: createMetricsRegistry('test'),
      healthChecks: [],
      config: appConfig,
      authenticator: await createAuthenticator(appConfig),
    });
    await app.register(orderTimelineRoutes, { db: database.db });
  });
  afterAll(async () => {
    await consumer?.stop();
    await lagAdmin?.disconnect();
    await dlq?.stop();
    await producer?.disconnect();
    await app?.close();
    await own?.drop();
    await database?.destroy();
  });

  it('applies an event delivered twice only once', async () => {
    const orderId = randomUUID();
    const event = envelope('ORDER_CONFIRMED', orderId, {});
    const duplicatesBefore = await outcomeCount('duplicate');
    const series = { group: groupId, event_type: 'ORDER_CONFIRMED' };
    const receivedBefore = await metricValue('oms_events_received_total', { ...series, topic: own.orderEvents });
    const appliedBefore = await metricValue('oms_events_processed_total', { ...series, outcome: 'applied' });
    const timedBefore = await metricValue('oms_event_processing_duration_seconds', { ...series, outcome: 'duplicate', le: '+Inf' });
    await deliver(event);
    await deliver(event);
    await eventually(async () => ((await outcomeCount('duplicate')) > duplicatesBefore ? true : undefined), 30_000, 'the second delivery to be handled');

    expect(await timelineRows(orderId)).toHaveLength(1);
    const inbox = await database.db.selectFrom('processed_events').selectAll().where('event_id', '=', event.eventId).execute();
    expect(inbox).toEqual([expect.objectContaining({ consumer: groupId, event_type: 'ORDER_CONFIRMED' })]);
    const received = logs.filter((line) => line.msg === 'EVENT_RECEIVED' && line.eventId === event.eventId);
    expect(received).toHaveLength(2);
    expect(received[0]).toMatchObject({ eventType: 'ORDER_CONFIRMED', aggregateId: orderId, correlationId: orderId, topic: own.orderEvents });
    const lag = await registry.getSingleMetricAsString('oms_consumer_lag');
    expect(lag).toMatch(new RegExp(`oms_consumer_lag\\{group="${groupId}",topic="${own.orderEvents.replaceAll('.', '\\.')}",partition="\\d+"\\} \\d+`));
    // Both deliveries were received; one was applied and one was a timed duplicate (the topics are
    // the suite's own, so nothing else is counted).
    expect(await metricValue('oms_events_received_total', { ...series, topic: own.orderEvents })).toBe(receivedBefore + 2);
    expect(await metricValue('oms_events_processed_total', { ...series, outcome: 'applied' })).toBe(appliedBefore + 1);
    expect(await metricValue('oms_event_processing_duration_seconds', { ...series, outcome: 'duplicate', le: '+Inf' })).toBe(timedBefore + 1);
  });

  it('after a crash between the batch transaction and the offset commit, the re-delivered batch adds no timeline row', async () => {
    const orderId = randomUUID();
    const events = [envelope('STOCK_CONFIRMED', orderId, { items: [] }), envelope('PAYMENT_COMPLETED', orderId, {
      paymentId: randomUUID(), reservationId: randomUUID(), amount: '1.00', currency: 'EUR', transactionId: 'tx-crash', paymentMethod: 'card',
    }), envelope('ORDER_CONFIRMED', orderId, {})];
    const topics = [own.productEvents, own.paymentEvents, own.orderEvents];
    // What the crashed consumer left behind: the first two events' transaction committed, their offsets not.
    await recordTimelineEvents(database.worker, groupId, events.slice(0, 2).map((event, i) => ({ event, topic: topics[i]! })));
    const duplicatesBefore = await outcomeCount('duplicate');
    for (const event of events) await deliver(event);

    await eventually(async () => ((await outcomeCount('duplicate')) >= duplicatesBefore + 2 && (await timelineRows(orderId)).length >= 3 ? true : undefined), 30_000, 'the re-delivered batch handled');
    const rows = await timelineRows(orderId);
    expect(rows.map((row) => row.event_id).sort()).toEqual(events.map((event) => event.eventId).sort());
  });

  it('measures lag from the broker, so a group that consumes nothing shows what waits for it', async () => {
    const idle = `test-idle-${randomUUID()}`;
    await positionGroupAtEnd(kafka, idle, [own.orderEvents]);
    try {
      const total = async () => (await consumerGroupLag(lagAdmin, idle, [own.orderEvents])).reduce((sum, p) => sum + p.lag, 0);
      const before = await total();
      await deliver(envelope('ORDER_CONFIRMED', randomUUID(), {}));
      expect(await total()).toBeGreaterThanOrEqual(before + 1);
    } finally {
      await lagAdmin.deleteGroups([idle]);
    }
  });

  it('dead-letters messages it cannot parse, with why and where from, and moves on past them', async () => {
    const orderId = randomUUID();
    const notJson = envelope('ORDER_CONFIRMED', orderId, {});
    const wrongShape = envelope('ORDER_FAILED', orderId, {}); // ORDER_FAILED needs a reason
    const good = envelope('ORDER_CONFIRMED', orderId, {});
    await deliver(notJson, '{"eventId": not json');
    await deliver(wrongShape);
    await deliver(good); // same key, same partition: it is behind the two bad ones

    await eventually(async () => ((await timelineRows(orderId)).length === 1 ? true : undefined), 30_000, 'the good event after the bad ones');
    const letters = await dlq.waitFor((all) => all.filter((m) => m.key === orderId).length >= 2);
    const [first, second] = letters.filter((m) => m.key === orderId);
    expect(first!.headers).toMatchObject({
      'dlq-error-type': 'INVALID_JSON',
      'dlq-source': `consumer:${groupId}`,
      'dlq-original-topic': own.orderEvents,
      'event-id': notJson.eventId,
    });
    expect(first!.value).toBe('{"eventId": not json');
    expect(first!.headers['dlq-original-offset']).toMatch(/^\d+$/);
    expect(second!.headers).toMatchObject({ 'dlq-error-type': 'INVALID_EVENT', 'event-id': wrongShape.eventId });
    expect(second!.headers['dlq-reason']).toMatch(/reason/);

    // The group's committed position is past all three: a restart would not see them again.
    const admin = kafka.admin();
    await admin.connect();
    try {
      const partition = Number(first!.headers['dlq-original-partition']);
      const [committed] = await admin.fetchOffsets({ groupId, topics: [own.orderEvents] });
      const offset = committed!.partitions.find((p) => p.partition === partition)!.offset;
      expect(BigInt(offset)).toBeGreaterThan(BigInt(first!.headers['dlq-original-offset']!) + 2n);
    } finally {
      await admin.disconnect();
    }
  });

  it('dead-letters an event whose handling keeps failing, and applies nothing of it', async () => {
    // order_events.order_id is VARCHAR(100): this valid event can never be stored.
    const orderId = `order-${'9'.repeat(120)}`;
    const event = envelope('PAYMENT_FAILED', orderId, { reservationId: null, reason: 'declined', errorCode: 'DECLINED' });
    await deliver(event);
    const letters = await dlq.waitFor((all) => all.some((m) => m.headers['event-id'] === event.eventId));
    expect(letters.find((m) => m.headers['event-id'] === event.eventId)!.headers).toMatchObject({
      'dlq-error-type': 'HANDLER_FAILED',
      'dlq-original-topic': own.paymentEvents,
      'event-type': 'PAYMENT_FAILED',
    });
    expect(await database.db.selectFrom('processed_events').select('event_id').where('event_id', '=', event.eventId).execute()).toEqual([]);
  });

  it('GET /orders/:id/events returns the timeline from every topic, ordered by when events occurred', async () => {
    const customerId = randomUUID();
    const orderId = randomUUID();
    await database.db.insertInto('customers').values({ id: customerId, name: 'Grace', email: `${customerId}@example.com` }).execute();
    await database.db
      .insertInto('orders')
      .values({
        id: orderId,
        customer_id: customerId,
        total_minor: 1250,
        currency: 'EUR',
        payment_method: 'card',
        confirmation_mode: 'auto',
        workflow_id: `order-${orderId}`,
        failure_reason: null,
        payment_reservation_id: null,
        payment_id: null,
        cancellation_reason: null,
      })
      .execute();
    const at = (second: number) => new Date(Date.UTC(2026, 0, 1, 12, 0, second)).toISOString();
    const reserved = envelope('STOCK_CONFIRMED', orderId, { items: [{ productId: randomUUID(), quantity: 1 }] }, at(2));
    const paid = envelope('PAYMENT_COMPLETED', orderId, {
      paymentId: randomUUID(), reservationId: randomUUID(), amount: '12.50', currency: 'EUR', transactionId: 'tx-1', paymentMethod: 'card',
    }, at(3));
    const confirmed = envelope('ORDER_CONFIRMED', orderId, {}, at(1));
    // Arrival order differs from occurrence order (three topics, no ordering between them).
    for (const event of [paid, reserved, confirmed]) await deliver(event);
    await eventually(async () => ((await timelineRows(orderId)).length === 3 ? true : undefined), 30_000, 'three timeline rows');

    const response = await app.inject({ method: 'GET', url: `/orders/${orderId}/events`, headers: await asOperator() });
    expect(response.statusCode).toBe(200);
    const body = response.json<{ orderId: string; events: { eventId: string; eventType: string; topic: string; occurredAt: string; payload: Record<string, unknown> }[] }>();
    expect(body.orderId).toBe(orderId);
    expect(body.events.map((e) => [e.eventType, e.topic, e.occurredAt])).toEqual([
      ['ORDER_CONFIRMED', own.orderEvents, at(1)],
      ['STOCK_CONFIRMED', own.productEvents, at(2)],
      ['PAYMENT_COMPLETED', own.paymentEvents, at(3)],
    ]);
    expect(body.events[2]!.payload).toMatchObject({ orderId, amount: '12.50' });
  });

  it('answers 404 for an unknown order and 400 for a malformed id', async () => {
    const missing = await app.inject({ method: 'GET', url: `/orders/${randomUUID()}/events`, headers: await asOperator() });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ error: { code: 'ORDER_NOT_FOUND' } });
    const malformed = await app.inject({ method: 'GET', url: '/orders/not-a-uuid/events', headers: await asOperator() });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json()).toHaveProperty('error.code');
  });
});

describe('order timeline consumer while order_db refuses connections', () => {
  it('commits nothing and dead-letters nothing, then applies the event once the database is back', { timeout: 180_000 }, async () => {
    const config = testConfig();
    const database = await createTestDatabase('order');
    // Our own pool, with an error listener: terminating its idle connections must not crash the test process.
    const pool = new pg.Pool({ connectionString: database.workerUrl, max: 4 });
    pool.on('error', () => undefined);
    const db = new Kysely<OrderDatabase>({ dialect: new PostgresDialect({ pool }) });
    const admin = new pg.Client({ connectionString: inject('stack').PG_ADMIN_URL });
    await admin.connect();
    const kafka = createKafka(config, 'test-timeline-outage');
    const own = await createOwnTopics(kafka, 'timeline-outage');
    const producer = kafka.producer();
    const groupId = `test-timeline-outage-${randomUUID()}`;
    const orderId = randomUUID();
    const dlq = await startKafkaProbe(kafka, [own.deadLetters], (m) => m.key === orderId && m.headers['dlq-source'] === `consumer:${groupId}`);
    let consumer: RunningConsumer | undefined;
    try {
      await producer.connect();
      await positionGroupAtEnd(kafka, groupId, own.events);
      consumer = await startOrderTimelineConsumer({
        kafka,
        db,
        logger: pino({ level: 'silent' }),
        metrics: createConsumerMetrics(new Registry()),
        groupId,
        fromBeginning: false,
        maxAttempts: 2,
        retryDelayMs: 20,
        topics: own.events,
        deadLetterTopic: own.deadLetters,
      });
      // Our event is the only message on these topics: a crash is kafkajs giving up on its retries
      // of our event's batch (each one a failed attempt) before it restarts the consumer.
      let crashes = 0;
      consumer.consumer.on(consumer.consumer.events.CRASH, () => crashes++);

      await admin.query(`ALTER DATABASE ${database.name} ALLOW_CONNECTIONS false`);
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [database.name]);
      const event = envelope('ORDER_CONFIRMED', orderId, {});
      const [sent] = await producer.send({ topic: own.orderEvents, acks: -1, messages: [{ key: orderId, value: JSON.stringify(event) }] });
      // The outage was met, and handled by retrying and restarting, not by dead-lettering or
      // committing past the event.
      await eventually(() => (crashes >= 1 ? true : undefined), 90_000, 'the consumer to fail on the event and restart while order_db refuses connections');
      expect(dlq.messages).toEqual([]);
      const kafkaAdmin = kafka.admin();
      await kafkaAdmin.connect();
      const [committed] = await kafkaAdmin.fetchOffsets({ groupId, topics: [own.orderEvents] });
      await kafkaAdmin.disconnect();
      const position = committed!.partitions.find((p) => p.partition === sent!.partition)!.offset;
      expect(BigInt(position)).toBeLessThanOrEqual(BigInt(sent!.baseOffset!));

      await admin.query(`ALTER DATABASE ${database.name} ALLOW_CONNECTIONS true`);
      await eventually(async () => {
        const rows = await db.selectFrom('order_events').select('event_id').where('order_id', '=', orderId).execute();
        return rows.length === 1 ? rows : undefined;
      }, 120_000, 'the event applied after the database came back', 500);
      expect(dlq.messages).toEqual([]);
    } finally {
      await admin.query(`ALTER DATABASE ${database.name} ALLOW_CONNECTIONS true`).catch(() => undefined);
      await consumer?.stop();
      await dlq.stop();
      await producer.disconnect();
      await own.drop();
      await admin.end();
      await db.destroy();
      await database.destroy();
    }
  });
});
