/**
 * A freshly created and migrated database per suite, on the real PostgreSQL server, dropped
 * afterwards: suites never see each other's rows and never touch the databases `./oms up` uses.
 */
import { randomBytes } from 'node:crypto';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { inject } from 'vitest';
import { createPool } from '../../db/connection';
import type { DatabaseByService } from '../../db/databases';
import { migrateToLatest, type ServiceName } from '../../db/migrator';

export interface TestDatabase<S extends ServiceName> {
  name: string;
  url: string;
  db: Kysely<DatabaseByService[S]>;
  destroy: () => Promise<void>;
}

async function admin<T>(run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: inject('stack').PG_ADMIN_URL });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

/** Creates an empty database (no migrations), for tests of the migrations themselves. */
export async function createEmptyDatabase(prefix: string): Promise<{ name: string; url: string; drop: () => Promise<void> }> {
  const name = `test_${prefix}_${randomBytes(4).toString('hex')}`;
  await admin((client) => client.query(`CREATE DATABASE ${name}`));
  const url = new URL(inject('stack').PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return { name, url: url.toString(), drop: () => admin((client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined) };
}

function allClientsClosed(pool: pg.Pool): Promise<void> {
  let open = pool.totalCount;
  return new Promise((resolve) => {
    if (open === 0) return resolve();
    pool.on('remove', () => {
      open -= 1;
      if (open === 0) resolve();
    });
  });
}

export async function createTestDatabase<S extends ServiceName>(service: S): Promise<TestDatabase<S>> {
  const { name, url, drop } = await createEmptyDatabase(service);
  const pool = createPool({ connectionString: url, poolMax: 20, applicationName: `oms-test-${service}` });
  const db = new Kysely<DatabaseByService[S]>({ dialect: new PostgresDialect({ pool }) });
  await migrateToLatest(db, service);
  return {
    name,
    url,
    db,
    destroy: async () => {
      // pool.end() resolves before its sockets have closed; dropping the database (WITH FORCE)
      // before then kills those backends and their clients throw 57P01 into the test run.
      const closed = allClientsClosed(pool);
      await db.destroy();
      await closed;
      await drop();
    },
  };
}
