/**
 * The relay's claim statement on a fresh order database, as the worker's role runs it: which rows
 * it hands out, in what order, and the plan it runs with after a backlog built up behind stale
 * statistics (the case that made every claim cost the whole backlog).
 */
import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { SharedTables } from '../../lib/shared-tables';
import { outboxEventRow } from '../../lib/outbox';
import { claimDueEvents, explainClaim } from '../../workers/outbox-relay/store';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

describe('outbox claim', () => {
  let database: TestDatabase<'order'>;
  let owner: Kysely<SharedTables>;
  let relay: Kysely<SharedTables>;

  beforeAll(async () => {
    database = await createTestDatabase('order');
    owner = database.db as unknown as Kysely<SharedTables>;
    relay = database.worker as unknown as Kysely<SharedTables>;
    // The plan test needs statistics that stay as it leaves them.
    await sql`ALTER TABLE outbox_events SET (autovacuum_enabled = false)`.execute(owner);
  });
  afterAll(async () => {
    await database?.destroy();
  });
  beforeEach(async () => {
    await sql`TRUNCATE outbox_events`.execute(owner);
  });

  /** Commits one event per aggregate given, in that order; returns the rows' ids. */
  async function insertEvents(aggregateIds: readonly string[], columns: { next_attempt_at?: Date; retry_count?: number } = {}): Promise<number[]> {
    const rows = aggregateIds.map((orderId) => ({
      ...outboxEventRow({ eventType: 'ORDER_CONFIRMED', aggregateId: orderId, payload: { orderId } }).row,
      ...columns,
    }));
    const inserted = await owner.insertInto('outbox_events').values(rows).returning('id').execute();
    return inserted.map((row) => Number(row.id));
  }
  const claimedIds = async (limit = 100, inFlight: number[] = []) => (await claimDueEvents(relay, limit, inFlight)).map((row) => Number(row.id));

  it('hands out a row that never failed at once, even when the clock that stamped it runs ahead of the database', async () => {
    const order = randomUUID();
    // An application host whose clock is a minute ahead wrote the first event; the second came from an accurate one.
    const [ahead] = await insertEvents([order], { next_attempt_at: new Date(Date.now() + 60_000) });
    const [accurate] = await insertEvents([order]);
    expect(await claimedIds()).toEqual([ahead, accurate]);
  });

  it('holds the later events of an aggregate whose earlier event waits out a backoff, and no other aggregate', async () => {
    const [held, other] = [randomUUID(), randomUUID()];
    const [failed] = await insertEvents([held], { retry_count: 1, next_attempt_at: new Date(Date.now() + 3_600_000) });
    const [behind, passing] = await insertEvents([held, other]);
    expect(await claimedIds()).toEqual([passing]);

    // The backoff is over: the failed event goes first, its aggregate follows.
    await owner.updateTable('outbox_events').set({ next_attempt_at: sql<Date>`now()` }).where('id', '=', failed!).execute();
    expect(await claimedIds()).toEqual([failed, behind, passing]);
  });

  it('claims in id order up to the limit, leaving out the batch in flight', async () => {
    const ids = await insertEvents(Array.from({ length: 6 }, () => randomUUID()));
    expect(await claimedIds(3)).toEqual(ids.slice(0, 3));
    expect(await claimedIds(3, ids.slice(0, 3))).toEqual(ids.slice(3));
  });

  it('walks the pending index in id order and stops at the limit when the statistics predate a backlog', async () => {
    // Normal running: the table is analyzed while every row is PUBLISHED, as after any quiet period.
    const published = await insertEvents(Array.from({ length: 2_000 }, () => randomUUID()));
    await owner.updateTable('outbox_events').set({ status: 'PUBLISHED', published_at: sql<Date>`now()` }).where('id', 'in', published).execute();
    await sql`ANALYZE outbox_events`.execute(owner);
    // Then Kafka is away for a while: a backlog the statistics know nothing about.
    const aggregates = Array.from({ length: 500 }, () => randomUUID());
    for (let round = 0; round < 6; round++) await insertEvents(aggregates);

    const plan = await explainClaim(relay, 500);
    expect(plan).toMatch(/Index Scan using idx_outbox_pending on outbox_events o/);
    expect(plan).toMatch(/Index Scan using idx_outbox_backoff on outbox_events earlier/);
    // A bitmap scan and a sort of every PENDING row, or a scan of the pending index per candidate, is what stale statistics chose.
    expect(plan).not.toMatch(/Sort|Bitmap/);
    expect(await claimedIds(500)).toHaveLength(500);
  });
});
