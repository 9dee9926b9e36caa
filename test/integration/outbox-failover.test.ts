/**
 * The relay when more than one runs, and when one dies: two relays on one database lose, duplicate
 * and reorder nothing; a relay worker killed with SIGKILL in the middle of a drain loses nothing,
 * because Temporal moves its activity to another worker once the heartbeats stop.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import type { OrderDatabase } from '../../db/order/schema';
import { TOPICS } from '../../lib/kafka';
import type { EventEnvelope } from '../../lib/events';
import { appendOutboxEvent } from '../../lib/outbox';
import { outboxRelayWorkflow } from '../../workflows/outbox-relay';
import { getOutboxRelayStatusQuery } from '../../workflows/outbox-relay-contract';
import { createTestDatabase } from '../helpers/database';
import { deliverAsRelay, eventually, startKafkaProbe, type KafkaProbe, type ProbedMessage } from '../helpers/kafka-probe';
import { TEST_RELAY_INPUT, commitOrderEvent, startRelayHarness, type RelayHarness } from '../helpers/outbox-relay';

/** Event ids per aggregate in first-arrival order: what a deduplicating consumer applies. */
function firstArrivals(messages: ProbedMessage[]): Map<string, string[]> {
  const seen = new Set<string>();
  const byAggregate = new Map<string, string[]>();
  for (const message of messages) {
    const eventId = message.headers['event-id']!;
    if (seen.has(eventId)) continue;
    seen.add(eventId);
    byAggregate.set(message.key!, [...(byAggregate.get(message.key!) ?? []), eventId]);
  }
  return byAggregate;
}

describe('outbox relay failover', () => {
  let relay: RelayHarness;
  let probe: KafkaProbe;
  const ours = new Set<string>();

  beforeAll(async () => {
    relay = await startRelayHarness('outbox-failover');
    probe = await startKafkaProbe(relay.kafka, [TOPICS.orderEvents], (m) => m.key !== null && ours.has(m.key));
  });
  afterAll(async () => {
    await probe?.stop();
    await relay?.close();
  });

  it('two relays on one database deliver every event once, each aggregate in commit order', async () => {
    const relayIds = [await relay.startRelay(), await relay.startRelay()];
    const aggregates = Array.from({ length: 8 }, () => randomUUID());
    aggregates.forEach((id) => ours.add(id));
    const written = new Map<string, string[]>();
    // Eight writers at once, each committing its aggregate's events one transaction at a time.
    await Promise.all(
      aggregates.map(async (orderId) => {
        const ids: string[] = [];
        for (let i = 0; i < 30; i++) ids.push((await commitOrderEvent(relay.db, orderId)).eventId);
        written.set(orderId, ids);
      }),
    );
    const total = aggregates.length * 30;
    const messages = await probe.waitFor((all) => new Set(all.map((m) => m.headers['event-id'])).size >= total, 60_000);
    const arrived = firstArrivals(messages);
    for (const orderId of aggregates) expect(arrived.get(orderId)).toEqual(written.get(orderId));

    // Both relays ran (one publishing, the other standing by or taking turns); together they published each row once.
    const totals = await eventually(async () => {
      const statuses = await Promise.all(relayIds.map((id) => relay.temporal.client.workflow.getHandle(id).query(getOutboxRelayStatusQuery)));
      return statuses.every((s) => s.runs >= 1) && statuses.reduce((sum, s) => sum + s.published, 0) >= total ? statuses : undefined;
    }, 30_000, 'both relays to finish a run');
    expect(totals.reduce((sum, s) => sum + s.published, 0)).toBe(total);
    const rows = await relay.db.selectFrom('outbox_events').select('status').where('aggregate_id', 'in', aggregates).execute();
    expect(rows.every((row) => row.status === 'PUBLISHED')).toBe(true);

    // Nothing twice, checked once no relay can publish again (every row is PUBLISHED) and the
    // probe has read everything before a marker sent behind each aggregate's events (same key,
    // same partition, so it arrives last): a duplicate still in flight cannot slip past.
    // The markers are well-formed events, like the ones under test, for the stack's own consumers.
    const producer = relay.kafka.producer();
    await producer.connect();
    const markers = aggregates.map((orderId): EventEnvelope => ({
      eventId: randomUUID(),
      eventType: 'ORDER_CONFIRMED',
      aggregateType: 'ORDER',
      aggregateId: orderId,
      timestamp: new Date().toISOString(),
      version: 1,
      correlationId: orderId,
      payload: { orderId },
    }));
    try {
      for (const marker of markers) await deliverAsRelay(producer, marker);
    } finally {
      await producer.disconnect();
    }
    const markerIds = new Set(markers.map((marker) => marker.eventId));
    const drained = await probe.waitFor((all) => all.filter((m) => markerIds.has(m.headers['event-id']!)).length === markers.length, 30_000);
    const published = drained.filter((m) => !markerIds.has(m.headers['event-id']!));
    expect(published).toHaveLength(total);
    expect(new Set(published.map((m) => m.headers['event-id'])).size).toBe(total);
    for (const id of relayIds) await relay.temporal.client.workflow.getHandle(id).terminate('next test');
  });

  describe('a relay worker killed with SIGKILL mid-drain', () => {
    const children: ChildProcess[] = [];
    afterAll(() => {
      for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });

    /** SIGTERM (the worker drains and exits), SIGKILL if it has not within 15 s. */
    async function stopProcess(child: ChildProcess): Promise<void> {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }

    function startWorkerProcess(databaseUrl: string, taskQueue: string): Promise<ChildProcess> {
      const stack = inject('stack');
      const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../fixtures/outbox-worker.ts', import.meta.url))], {
        env: {
          ...process.env,
          NODE_ENV: 'test',
          LOG_LEVEL: 'warn',
          WORKER_ORDER_DATABASE_URL: databaseUrl,
          KAFKA_BROKERS: stack.KAFKA_BROKERS,
          TEMPORAL_ADDRESS: stack.TEMPORAL_ADDRESS,
          // Small batches: the drain takes some sixty claim/publish/mark rounds, so the kill lands in the middle of it.
          OUTBOX_BATCH_SIZE: '50',
          OUTBOX_POLL_INTERVAL_MS: '250',
          OMS_TEST_TASK_QUEUE: taskQueue,
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      children.push(child);
      return new Promise((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => {
          if (chunk.toString().includes('READY')) resolve(child);
        });
        child.once('exit', (code) => reject(new Error(`outbox worker process exited early (${code})`)));
      });
    }

    it('loses nothing: the batch is published again by the next worker', { timeout: 240_000 }, async () => {
      const database = await createTestDatabase('order');
      const db: Kysely<OrderDatabase> = database.db;
      const taskQueue = `test-outbox-kill-${randomUUID()}`;
      const workflowId = `test-outbox-relay-kill-${randomUUID()}`;
      try {
        const aggregates: string[] = Array.from({ length: 10 }, () => randomUUID());
        aggregates.forEach((id) => ours.add(id));
        const written = new Map<string, string[]>();
        // Everything is committed before the relay starts.
        for (const orderId of aggregates) {
          const ids = await db.transaction().execute(async (trx) => {
            const eventIds: string[] = [];
            for (let i = 0; i < 300; i++) eventIds.push((await appendOutboxEvent(trx, { eventType: 'ORDER_CONFIRMED', aggregateId: orderId, payload: { orderId } })).eventId);
            return eventIds;
          });
          written.set(orderId, ids);
        }
        const total = aggregates.length * 300;
        const isOurs = (m: ProbedMessage) => aggregates.includes(m.key!);
        // The last 100 events of each aggregate wait out a backoff (as if their first attempt had
        // failed) until the first worker is gone, so its kill lands mid-drain however fast it drains the rest.
        const heldBack = 100;
        await db
          .updateTable('outbox_events')
          .set({ retry_count: 1, next_attempt_at: sql<Date>`now() + interval '1 hour'` })
          .where('id', 'in', (eb) =>
            eb
              .selectFrom((qb) => qb.selectFrom('outbox_events').select(['id', sql<number>`row_number() OVER (PARTITION BY aggregate_id ORDER BY id DESC)`.as('from_last')]).as('ranked'))
              .select('ranked.id')
              .where('ranked.from_last', '<=', heldBack),
          )
          .execute();

        const first = await startWorkerProcess(database.workerUrl, taskQueue);
        await relay.temporal.client.workflow.start(outboxRelayWorkflow, {
          workflowId,
          taskQueue,
          args: [{ database: 'order', ...TEST_RELAY_INPUT, runForMs: 60_000 }],
        });
        await probe.waitFor((all) => all.some(isOurs), 60_000);
        first.kill('SIGKILL');
        await new Promise((resolve) => first.once('exit', resolve));

        // Killed mid-drain: some events reached Kafka, the rows of the batch in flight (if any) and those held back are not PUBLISHED.
        const published = await db.selectFrom('outbox_events').select('id').where('status', '=', 'PUBLISHED').execute();
        expect(published.length).toBeLessThanOrEqual(total - aggregates.length * heldBack);
        expect(new Set(probe.messages.filter(isOurs).map((m) => m.headers['event-id'])).size).toBeLessThan(total);

        await db.updateTable('outbox_events').set({ next_attempt_at: sql<Date>`now()` }).where('status', '=', 'PENDING').execute();
        await startWorkerProcess(database.workerUrl, taskQueue);
        await eventually(async () => {
          const pending = await db.selectFrom('outbox_events').select('id').where('status', '<>', 'PUBLISHED').execute();
          return pending.length === 0 ? true : undefined;
        }, 120_000, 'every row PUBLISHED by the second worker', 500);
        const messages = await probe.waitFor((all) => new Set(all.filter(isOurs).map((m) => m.headers['event-id'])).size >= total, 30_000);
        const arrived = firstArrivals(messages.filter(isOurs));
        for (const orderId of aggregates) expect(arrived.get(orderId)).toEqual(written.get(orderId));
      } finally {
        await relay.temporal.client.workflow.getHandle(workflowId).terminate('test over').catch(() => undefined);
        await Promise.all(children.map(stopProcess));
        await database.destroy();
      }
    });
  });
});
