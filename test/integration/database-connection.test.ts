import { Kysely, PostgresDialect, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, databaseOnPool, PREPARED } from '../../db/connection';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

describe('database connections', () => {
  let product: TestDatabase<'product'>;
  beforeAll(async () => {
    product = await createTestDatabase('product');
  });
  afterAll(() => product.destroy());

  it('survive PostgreSQL killing the idle pool connections: the next query reconnects', async () => {
    const pool = createPool({ connectionString: product.url, poolMax: 3, applicationName: 'oms-test-idle-kill' });
    const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) });
    try {
      // Open three connections and leave them idle in the pool.
      const clients = await Promise.all([pool.connect(), pool.connect(), pool.connect()]);
      for (const client of clients) client.release();
      expect(pool.idleCount).toBe(3);
      const { rows } = await sql<{ terminated: number }>`
        SELECT count(*)::int AS terminated FROM (
          SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'oms-test-idle-kill' AND state = 'idle'
        ) AS killed`.execute(product.db);
      expect(rows[0]?.terminated).toBe(3);
      // Each dead idle connection reaches the pool as an 'error' event, which createPool's listener
      // handles (without it the test process would crash on an unhandled error), and is removed.
      await expect.poll(() => pool.totalCount, { timeout: 10_000 }).toBe(0);
      const after = await sql<{ one: number }>`SELECT 1 AS one`.execute(db);
      expect(after.rows[0]?.one).toBe(1);
    } finally {
      await db.destroy();
    }
  });

  it('run a PREPARED statement as a prepared statement, and drop a connection whose prepared plan a migration made stale', async () => {
    const pool = createPool({ connectionString: product.url, poolMax: 1, applicationName: 'oms-test-prepared' });
    const db = databaseOnPool<unknown>(pool);
    const backend = async () => (await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(db)).rows[0]!.pid;
    const preparedHere = async () =>
      (await sql<{ name: string; statement: string }>`SELECT name, statement FROM pg_prepared_statements`.execute(db)).rows;
    const probe = (id: number) => sql<Record<string, unknown>>`${PREPARED}SELECT * FROM prepared_probe WHERE id = ${id}`;
    try {
      await sql`CREATE TABLE prepared_probe (id int PRIMARY KEY, note text)`.execute(product.db);
      await sql`INSERT INTO prepared_probe VALUES (1, 'one'), (2, 'two')`.execute(product.db);
      const first = await backend();
      expect((await probe(1).execute(db)).rows).toEqual([{ id: 1, note: 'one' }]);
      expect((await probe(2).execute(db)).rows).toEqual([{ id: 2, note: 'two' }]);
      // One statement, prepared once on this connection whatever the parameters; an unmarked one is not prepared.
      const prepared = await preparedHere();
      expect(prepared).toHaveLength(1);
      expect(prepared[0]!.name).toMatch(/^oms_[0-9a-f]{20}$/);
      expect(prepared[0]!.statement).toContain('FROM prepared_probe');

      // A migration adds a column: the prepared plan's result type is stale on this connection.
      await sql`ALTER TABLE prepared_probe ADD COLUMN added int`.execute(product.db);
      await expect(probe(1).execute(db)).rejects.toThrow(/cached plan must not change result type/);
      // That connection was closed, not pooled again: the next call prepares afresh on a new one.
      expect((await probe(1).execute(db)).rows).toEqual([{ id: 1, note: 'one', added: null }]);
      expect(await backend()).not.toBe(first);
    } finally {
      await db.destroy();
      await sql`DROP TABLE IF EXISTS prepared_probe`.execute(product.db);
    }
  });
});
