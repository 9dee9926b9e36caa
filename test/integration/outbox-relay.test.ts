/**
 * The outbox relay against the real stack: PostgreSQL (a fresh order database), Kafka and a
 * Temporal worker running the relay workflow. The relay publishes to this suite's own copies of the
 * OMS topics (startRelayHarness with ownTopics), so the oversized event, its dead letter and the
 * other test events never reach the consumers of the stack a developer is running. Its log, its
 * metrics and the dead letter's headers name the OMS topic it chose; the probe sees the copy.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SharedTables } from '../../lib/shared-tables';
import { appendOutboxEvent } from '../../lib/outbox';
import { TOPICS } from '../../lib/kafka';
import { purgePublished, requeueFailed } from '../../workers/outbox-relay/store';
import { getOutboxRelayStatusQuery } from '../../workflows/outbox-relay-contract';
import type { Kysely } from 'kysely';
import { eventually, startKafkaProbe, type KafkaProbe, type OwnTopics, type ProbedMessage } from '../helpers/kafka-probe';
import { commitOrderEvent, startRelayHarness, type RelayHarness } from '../helpers/outbox-relay';

const MAX_RETRIES = 3;

describe('outbox relay to Kafka', () => {
  let relay: RelayHarness;
  let topics: OwnTopics;
  let probe: KafkaProbe;
  let relayWorkflowId: string;
  const ours = new Set<string>();
  const forAggregate = (messages: ProbedMessage[], aggregateId: string) => messages.filter((m) => m.key === aggregateId);
  const rowOf = (eventId: string) => relay.db.selectFrom('outbox_events').selectAll().where('event_id', '=', eventId).executeTakeFirstOrThrow();
  const track = (id: string) => (ours.add(id), id);

  beforeAll(async () => {
    relay = await startRelayHarness('outbox-relay', { OUTBOX_MAX_RETRIES: String(MAX_RETRIES) }, { ownTopics: true });
    topics = relay.topics!;
    probe = await startKafkaProbe(relay.kafka, [topics.orderEvents, topics.generalEvents, topics.deadLetters], (m) => m.key !== null && ours.has(m.key));
    relayWorkflowId = await relay.startRelay();
  });
  afterAll(async () => {
    await probe?.stop();
    await relay?.close();
  });

  it('publishes an event committed with a business change to its topic, keyed by aggregate, with headers; the row becomes PUBLISHED', async () => {
    const customerId = track(randomUUID());
    const orderId = track(randomUUID());
    const [customerEvent, orderEvent] = await relay.db.transaction().execute(async (trx) => {
      await trx.insertInto('customers').values({ id: customerId, name: 'Ada', email: `${customerId}@example.com` }).execute();
      return [
        await appendOutboxEvent(trx, { eventType: 'CUSTOMER_CREATED', aggregateId: customerId, payload: { customerId, email: `${customerId}@example.com`, status: 'ACTIVE' } }),
        await appendOutboxEvent(trx, { eventType: 'ORDER_FAILED', aggregateId: orderId, payload: { orderId, reason: 'declined' }, correlationId: orderId }),
      ];
    });

    const messages = await probe.waitFor((all) => all.some((m) => m.key === orderId) && all.some((m) => m.key === customerId));
    const order = forAggregate(messages, orderId)[0]!;
    expect(order.topic).toBe(topics.orderEvents);
    expect(order.headers).toMatchObject({
      'event-id': orderEvent.eventId,
      'event-type': 'ORDER_FAILED',
      'aggregate-type': 'ORDER',
      'correlation-id': orderId,
      timestamp: orderEvent.timestamp,
    });
    expect(JSON.parse(order.value)).toEqual(orderEvent);
    const customer = forAggregate(messages, customerId)[0]!;
    expect(customer.topic).toBe(topics.generalEvents);
    expect(customer.headers['event-id']).toBe(customerEvent.eventId);

    const row = await eventually(async () => {
      const current = await rowOf(orderEvent.eventId);
      return current.status === 'PUBLISHED' ? current : undefined;
    }, 10_000, 'the row to become PUBLISHED');
    expect(row.published_at).toBeInstanceOf(Date);
    expect(row.retry_count).toBe(0);

    const published = relay.logs.find((line) => line.msg === 'EVENT_PUBLISHED' && line.eventId === orderEvent.eventId);
    expect(published).toMatchObject({ eventType: 'ORDER_FAILED', aggregateId: orderId, correlationId: orderId, topic: TOPICS.orderEvents });
    const metrics = await relay.registry.getSingleMetricAsString('oms_outbox_published_total');
    expect(metrics).toMatch(/oms_outbox_published_total\{db="order_db",topic="oms.orders.events"\} [1-9]/);
  });

  it('publishes nothing from a rolled-back transaction', async () => {
    const rolledBack = track(randomUUID());
    const committed = track(randomUUID());
    await expect(
      relay.db.transaction().execute(async (trx) => {
        await appendOutboxEvent(trx, { eventType: 'ORDER_CONFIRMED', aggregateId: rolledBack, payload: { orderId: rolledBack } });
        throw new Error('business rule failed after the event was written');
      }),
    ).rejects.toThrow('business rule failed');
    // Written after the rolled-back one; the relay goes in id order, so once this arrives the other had its chance.
    await commitOrderEvent(relay.db, committed);
    await probe.waitFor((all) => all.some((m) => m.key === committed));
    expect(forAggregate(probe.messages, rolledBack)).toEqual([]);
    expect(await relay.db.selectFrom('outbox_events').select('id').where('aggregate_id', '=', rolledBack).execute()).toEqual([]);
  });

  it("delivers one aggregate's events in commit order, on one partition", async () => {
    const orderId = track(randomUUID());
    const written: string[] = [];
    for (let i = 0; i < 25; i++) written.push((await commitOrderEvent(relay.db, orderId, i % 2 ? 'ORDER_CONFIRMED' : 'ORDER_CANCELLATION_REQUESTED')).eventId);
    const messages = await probe.waitFor((all) => forAggregate(all, orderId).length >= written.length);
    const received = forAggregate(messages, orderId);
    expect(received.map((m) => m.headers['event-id'])).toEqual(written);
    expect(new Set(received.map((m) => m.partition)).size).toBe(1);
  });

  it('dead-letters an event the broker refuses after the maximum retries, holds its aggregate behind it, and requeues it once repaired', async () => {
    const poisoned = track(randomUUID());
    const healthy = track(randomUUID());
    // Larger than the broker's message.max.bytes (1 MiB by default): Kafka answers MESSAGE_TOO_LARGE every time.
    const poison = await commitOrderEvent(relay.db, poisoned, 'ORDER_FAILED', 'x'.repeat(1_200_000));
    const behindPoison = await commitOrderEvent(relay.db, poisoned, 'ORDER_CONFIRMED');
    const other = await commitOrderEvent(relay.db, healthy, 'ORDER_CONFIRMED');

    // Other aggregates are not held up by the poison.
    await probe.waitFor((all) => all.some((m) => m.headers['event-id'] === other.eventId));

    const isDeadLetter = (m: ProbedMessage) => m.topic === topics.deadLetters && m.headers['event-id'] === poison.eventId;
    const deadLetter = (await probe.waitFor((all) => all.some(isDeadLetter), 30_000)).find(isDeadLetter)!;
    expect(deadLetter.key).toBe(poisoned);
    expect(deadLetter.headers).toMatchObject({
      'dlq-error-type': 'MESSAGE_TOO_LARGE',
      'dlq-source': 'outbox-relay',
      'dlq-source-db': 'order_db',
      'dlq-original-topic': TOPICS.orderEvents,
      'dlq-retry-count': String(MAX_RETRIES),
      'event-type': 'ORDER_FAILED',
    });
    expect(deadLetter.headers['dlq-reason']).toMatch(/MESSAGE_TOO_LARGE/);
    // Too big to forward whole: the dead letter names the event; the FAILED row keeps it.
    expect(JSON.parse(deadLetter.value)).toMatchObject({ eventId: poison.eventId, payloadOmitted: true });

    const failed = await eventually(async () => {
      const row = await rowOf(poison.eventId);
      return row.status === 'FAILED' ? row : undefined;
    }, 10_000, 'the poison row to be FAILED');
    expect(failed.retry_count).toBe(MAX_RETRIES);
    expect(failed.error_message).toMatch(/MESSAGE_TOO_LARGE/);
    // Its aggregate's next event waited for it, and followed once it was dead-lettered.
    await probe.waitFor((all) => all.some((m) => m.headers['event-id'] === behindPoison.eventId));
    expect(forAggregate(probe.messages, poisoned).filter((m) => m.topic === topics.orderEvents).map((m) => m.headers['event-id'])).toEqual([behindPoison.eventId]);
    const metrics = await relay.registry.getSingleMetricAsString('oms_outbox_failed_total');
    expect(metrics).toMatch(/oms_outbox_failed_total\{db="order_db"\} [1-9]/);

    // An operator repairs the event and requeues it: a fresh retry budget, and it is published.
    await relay.db
      .updateTable('outbox_events')
      .set({ payload: sql`jsonb_set(payload, '{payload,reason}', '"declined (details trimmed)"')` })
      .where('event_id', '=', poison.eventId)
      .execute();
    expect(await requeueFailed(relay.db as unknown as Kysely<SharedTables>, { id: failed.id })).toEqual([failed.id]);
    const isRepublished = (m: ProbedMessage) => m.topic === topics.orderEvents && m.headers['event-id'] === poison.eventId;
    expect(JSON.parse((await probe.waitFor((all) => all.some(isRepublished))).find(isRepublished)!.value)).toMatchObject({
      payload: { orderId: poisoned, reason: 'declined (details trimmed)' },
    });
    await eventually(async () => ((await rowOf(poison.eventId)).status === 'PUBLISHED' ? true : undefined), 10_000, 'the requeued row to be PUBLISHED');
  });

  it('purges PUBLISHED rows older than the retention, and keeps everything else', async () => {
    const orderId = randomUUID();
    const old = await commitOrderEvent(relay.db, orderId);
    await eventually(async () => ((await rowOf(old.eventId)).status === 'PUBLISHED' ? true : undefined), 10_000, 'the row to be PUBLISHED');
    // The running relay workflow purges after each of its runs too, so it may delete the row
    // before we do: count both, and check the rows that must stay by id, not by a total.
    const relayPurged = async () => (await relay.temporal.client.workflow.getHandle(relayWorkflowId).query(getOutboxRelayStatusQuery)).purged;
    const relayPurgedBefore = await relayPurged();
    const kept = (await relay.db.selectFrom('outbox_events').select('event_id').where('event_id', '<>', old.eventId).execute()).map((row) => row.event_id);
    await relay.db.updateTable('outbox_events').set({ published_at: sql`now() - interval '73 hours'` }).where('event_id', '=', old.eventId).execute();

    const purgedByUs = await purgePublished(relay.db as unknown as Kysely<SharedTables>, relay.config.OUTBOX_RETENTION_HOURS);
    expect(await relay.db.selectFrom('outbox_events').select('id').where('event_id', '=', old.eventId).execute()).toEqual([]);
    // Only the old row was due, so the two purges together deleted exactly one row.
    await eventually(async () => (purgedByUs + (await relayPurged()) - relayPurgedBefore === 1 ? true : undefined), 20_000, 'the old row purged exactly once');
    const remaining = new Set((await relay.db.selectFrom('outbox_events').select('event_id').execute()).map((row) => row.event_id));
    expect(kept.filter((eventId) => !remaining.has(eventId))).toEqual([]);
  });

  it('runs under a workflow whose status query reports the runs it supervised', async () => {
    const handle = relay.temporal.client.workflow.getHandle(relayWorkflowId);
    const status = await eventually(async () => {
      const totals = await handle.query(getOutboxRelayStatusQuery);
      return totals.runs >= 1 && totals.published > 0 ? totals : undefined;
    }, 20_000, 'a finished relay run');
    expect(status.batches).toBeGreaterThan(0);
    expect((await handle.describe()).status.name).toBe('RUNNING');
  });

  it('continues as new after its configured number of runs, carrying its totals', async () => {
    const workflowId = await relay.startRelay({ runForMs: 300, runsBeforeContinueAsNew: 1 });
    const handle = relay.temporal.client.workflow.getHandle(workflowId);
    const firstRunId = (await handle.describe()).runId;
    const totals = await eventually(async () => {
      const description = await handle.describe();
      if (description.runId === firstRunId) return undefined;
      const status = await handle.query(getOutboxRelayStatusQuery);
      return status.runs >= 2 ? status : undefined;
    }, 30_000, 'a continued-as-new run with the earlier totals');
    expect(totals.runs).toBeGreaterThanOrEqual(2);
  });
});
