/**
 * `./oms dlq` against the real broker: a timeline consumer (its own group and order database)
 * dead-letters events it cannot store; the command lists and shows them with the reason and the
 * original topic, key and headers; once the cause is fixed, republish sends each back to its
 * topic with the same key and event id, and the consumer applies it once. The consumer reads and
 * dead-letters on this suite's own copies of the OMS topics (createOwnTopics), so the events it
 * refuses and the ones republished never reach the developer's running consumer, and neither it
 * nor other suites appear in what the command reads.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Kafka, Producer } from 'kafkajs';
import { sql } from 'kysely';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventEnvelope, EventType } from '../../lib/events';
import { createKafka } from '../../lib/kafka';
import { createConsumerMetrics } from '../../workers/outbox-relay/metrics';
import { startOrderTimelineConsumer, type RunningConsumer } from '../../workers/order-events-consumer';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { createOwnTopics, deliverAsRelay, positionGroupAtEnd, startKafkaProbe, type KafkaProbe, type OwnTopics } from '../helpers/kafka-probe';
import { testConfig } from '../helpers/stack';

const run = promisify(execFile);
const AGGREGATE_TYPES: Record<string, string> = { ORDER: 'ORDER', PAYMENT: 'PAYMENT' };

interface ListedLetter {
  offset: string;
  reason: string;
  errorType: string;
  originalTopic: string;
  key: string;
  eventId: string;
  eventType: string;
  source: string;
  headers: Record<string, string>;
  republished: { by: string; at: string; reason: string | null }[];
}

function envelope(eventType: EventType, orderId: string, payload: Record<string, unknown> = {}): EventEnvelope {
  return {
    eventId: randomUUID(),
    eventType,
    aggregateType: AGGREGATE_TYPES[eventType.split('_')[0]!]!,
    aggregateId: orderId,
    timestamp: new Date().toISOString(),
    version: 1,
    correlationId: `request-${randomUUID()}`,
    payload: { orderId, ...payload },
  };
}

describe('./oms dlq', () => {
  let topics: OwnTopics;
  const groupId = `test-dlq-cli-${randomUUID()}`;
  let database: TestDatabase<'order'>;
  let kafka: Kafka;
  let producer: Producer;
  let consumer: RunningConsumer;
  let republishedProbe: KafkaProbe;
  let opsDir: string;
  const registry = new Registry();

  /** Runs the command as an operator would; resolves with its output and exit code. */
  async function dlq(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
    const env = { ...process.env, OMS_OPERATOR: 'test-operator', OMS_OPS_LOG: join(opsDir, 'ops.log'), ...stackEnv() };
    // node --import tsx, not npx tsx: one process per call, not three; this suite starts a dozen.
    return run(process.execPath, ['--import', 'tsx', 'infra/ops/dlq.ts', ...args, '--topic', topics.deadLetters], { env, timeout: 90_000 }).then(
      ({ stdout, stderr }) => ({ stdout, stderr, code: 0 }),
      (error: { stdout: string; stderr: string; code: number }) => ({ stdout: error.stdout, stderr: error.stderr, code: error.code }),
    );
  }
  const stackEnv = () => ({ KAFKA_BROKERS: testConfig().KAFKA_BROKERS.join(',') });
  const listed = async (): Promise<ListedLetter[]> => JSON.parse((await dlq('list', '--json')).stdout) as ListedLetter[];
  const timelineRows = (orderId: string) => database.db.selectFrom('order_events').select('event_id').where('order_id', '=', orderId).execute();

  const deliver = (event: EventEnvelope) => deliverAsRelay(producer, event, JSON.stringify(event), topics.topicFor(event.eventType));

  /** Until dropped, order_db refuses timeline rows of these orders: the cause an operator fixes. */
  async function refuseTimelineOf(orderIds: string[]): Promise<() => Promise<void>> {
    const list = sql.join(orderIds.map((id) => sql.lit(id)));
    await sql`CREATE FUNCTION refuse_for_test() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$`.execute(database.db);
    await sql`CREATE TRIGGER refuse_for_test BEFORE INSERT ON order_events FOR EACH ROW WHEN (NEW.order_id IN (${list})) EXECUTE FUNCTION refuse_for_test()`.execute(database.db);
    return async () => {
      await sql`DROP TRIGGER refuse_for_test ON order_events`.execute(database.db);
      await sql`DROP FUNCTION refuse_for_test()`.execute(database.db);
    };
  }

  async function waitForLetters(predicate: (letters: ListedLetter[]) => boolean): Promise<ListedLetter[]> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const letters = await listed();
      if (predicate(letters)) return letters;
      if (Date.now() > deadline) throw new Error(`dead letters not as expected: ${JSON.stringify(letters.map((l) => [l.offset, l.eventId]))}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  beforeAll(async () => {
    opsDir = await mkdtemp(join(tmpdir(), 'oms-dlq-test-'));
    const config = testConfig();
    database = await createTestDatabase('order');
    kafka = createKafka(config, 'test-dlq-cli');
    topics = await createOwnTopics(kafka, 'dlq-cli');
    producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    republishedProbe = await startKafkaProbe(kafka, topics.events, (m) => m.headers['republished-from']?.startsWith(`${topics.deadLetters}:`) ?? false);
    await positionGroupAtEnd(kafka, groupId, topics.events);
    consumer = await startOrderTimelineConsumer({
      kafka,
      db: database.db,
      logger: pino({ level: 'silent' }),
      metrics: createConsumerMetrics(registry),
      groupId,
      maxAttempts: 2,
      retryDelayMs: 20,
      fromBeginning: false,
      topics: topics.events,
      deadLetterTopic: topics.deadLetters,
    });
  });
  afterAll(async () => {
    await consumer?.stop();
    await republishedProbe?.stop();
    await producer?.disconnect();
    await topics?.drop().catch(() => undefined);
    await database?.destroy();
    await rm(opsDir, { recursive: true, force: true });
  });

  // Each call of the command is a Node process that loads the CLI and connects to Kafka: seconds on
  // an idle machine, tens of seconds on a busy one. The bounds below count the calls, not sleeps.
  it('lists and shows a dead-lettered event; republish delivers it once, recorded, and refuses a second time', { timeout: 360_000 }, async () => {
    const orderId = randomUUID();
    const event = envelope('ORDER_CONFIRMED', orderId);
    const fix = await refuseTimelineOf([orderId]);
    await deliver(event);

    const [letter] = (await waitForLetters((all) => all.some((l) => l.eventId === event.eventId))).filter((l) => l.eventId === event.eventId);
    expect(letter).toMatchObject({
      source: `consumer:${groupId}`,
      errorType: 'HANDLER_FAILED',
      originalTopic: topics.orderEvents,
      key: orderId,
      eventType: 'ORDER_CONFIRMED',
      republished: [],
    });
    expect(letter!.reason).toContain('refused by the test');
    expect(letter!.headers).toMatchObject({ 'event-id': event.eventId, 'correlation-id': event.correlationId, 'aggregate-type': 'ORDER' });
    const table = await dlq('list', '--limit', '5');
    const topicPattern = topics.orderEvents.replaceAll('.', '\\.');
    expect(table.stdout).toMatch(new RegExp(`^${letter!.offset}\\s+\\S+\\s+consumer:${groupId}\\s+ORDER_CONFIRMED\\s+${topicPattern}\\s+${orderId}\\s+handler failed 2 times: refused by the test`, 'm'));
    const shown = JSON.parse((await dlq('show', letter!.offset)).stdout) as { value: EventEnvelope };
    expect(shown.value).toEqual(event);
    expect(await timelineRows(orderId)).toEqual([]);

    await fix();
    const republished = await dlq('republish', letter!.offset, '--reason', 'trigger dropped');
    expect(republished.code).toBe(0);
    expect(republished.stdout).toContain('republished 1 of 1');

    await expect.poll(() => timelineRows(orderId), { timeout: 30_000 }).toEqual([{ event_id: event.eventId }]);
    const sent = await republishedProbe.waitFor((all) => all.some((m) => m.headers['event-id'] === event.eventId));
    expect(sent.filter((m) => m.headers['event-id'] === event.eventId)).toEqual([
      expect.objectContaining({
        topic: topics.orderEvents,
        key: orderId,
        value: JSON.stringify(event),
        headers: expect.objectContaining({ 'event-id': event.eventId, 'correlation-id': event.correlationId, 'republished-from': `${topics.deadLetters}:0:${letter!.offset}` }) as unknown,
      }),
    ]);
    // No dlq-* header travels with the event back to its topic.
    expect(Object.keys(sent.find((m) => m.headers['event-id'] === event.eventId)!.headers).filter((name) => name.startsWith('dlq-'))).toEqual([]);

    // Who and when: on the dead letter topic (list shows it) and in the operations log.
    const after = (await listed()).find((l) => l.offset === letter!.offset)!;
    expect(after.republished).toEqual([{ by: expect.stringMatching(/^test-operator@/) as unknown, at: expect.any(String) as unknown, reason: 'trigger dropped', recordOffset: expect.any(String) as unknown }]);
    const opsLog = (await readFile(join(opsDir, 'ops.log'), 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(opsLog).toEqual([expect.objectContaining({ msg: 'DLQ_REPUBLISHED', deadLetter: `0:${letter!.offset}`, eventId: event.eventId, topic: topics.orderEvents, reason: 'trigger dropped' })]);

    // A second republish is refused; forced, the consumer's inbox still applies the event once.
    const again = await dlq('republish', letter!.offset);
    expect(again.code).toBe(1);
    expect(again.stdout).toContain('already republished');
    const duplicates = async () => (await registry.getSingleMetric('oms_events_processed_total')!.get()).values.filter((v) => v.labels.outcome === 'duplicate').length;
    expect(await duplicates()).toBe(0);
    expect((await dlq('republish', letter!.offset, '--again')).code).toBe(0);
    await expect.poll(duplicates, { timeout: 30_000 }).toBe(1);
    expect(await timelineRows(orderId)).toEqual([{ event_id: event.eventId }]);
  });

  it('republish --all-matching TYPE sends every dead letter of that type, each applied once', { timeout: 240_000 }, async () => {
    const orders = [randomUUID(), randomUUID()];
    const events = orders.map((orderId) => envelope('PAYMENT_FAILED', orderId, { reservationId: null, reason: 'declined', errorCode: 'DECLINED' }));
    const fix = await refuseTimelineOf(orders);
    for (const event of events) await deliver(event);
    await waitForLetters((all) => events.every((event) => all.some((l) => l.eventId === event.eventId)));
    await fix();

    const result = await dlq('republish', '--all-matching', 'PAYMENT_FAILED');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('republished 2 of 2');
    for (const [index, orderId] of orders.entries()) {
      await expect.poll(() => timelineRows(orderId), { timeout: 30_000 }).toEqual([{ event_id: events[index]!.eventId }]);
    }
    expect((await dlq('republish', '--all-matching', 'NO_SUCH_TYPE')).code).toBe(1);
  });

  it('refuses bad input with usage and exit code 2', async () => {
    const cases = [['republish'], ['show'], ['show', 'abc'], ['list', '--limit', '0'], ['frobnicate']];
    const results = await Promise.all(cases.map(async (args) => ({ args, ...(await dlq(...args)) })));
    for (const { args, code, stderr } of results) {
      expect({ args, code }).toEqual({ args, code: 2 });
      expect(stderr).toContain('usage:');
    }
  });
});
