import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

describe('database connections', () => {
  let product: TestDatabase<'product'>;
  beforeAll(async () => {
    product = await createTestDatabase('product');
  });
  afterAll(() => product.destroy());

  it('survive PostgreSQL killing the idle pool connections: the next query reconnects', async () => {
    // Open a few connections and leave them idle in the pool.
    await Promise.all(Array.from({ length: 3 }, () => sql`SELECT pg_sleep(0.05)`.execute(product.db)));
    const { rows } = await sql<{ terminated: number }>`
      SELECT count(*)::int AS terminated FROM (
        SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle'
      ) AS killed`.execute(product.db);
    expect(rows[0]?.terminated).toBeGreaterThan(0);
    // Without an 'error' listener on the pool, the dropped idle connections would have thrown an
    // unhandled error here and failed this test run.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const after = await sql<{ one: number }>`SELECT 1 AS one`.execute(product.db);
    expect(after.rows[0]?.one).toBe(1);
  });
});
