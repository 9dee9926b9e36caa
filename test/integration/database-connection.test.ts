import { Kysely, PostgresDialect, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../../db/connection';
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
});
