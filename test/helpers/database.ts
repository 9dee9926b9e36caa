/**
 * A freshly created and migrated database per suite, on the real PostgreSQL server, dropped
 * afterwards: suites never see each other's rows and never touch the databases `./oms up` uses.
 * Like the real ones, it is owned by its service's role, migrated as that role, and the worker
 * reaches it as oms_worker, so every suite runs on the production privileges (db/roles.ts).
 */
import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import pg from 'pg';
import { inject } from 'vitest';
import { createPool, databaseOnPool } from '../../db/connection';
import { databaseUrl, workerDatabaseUrl, type DatabaseByService } from '../../db/databases';
import { migrateToLatest, type ServiceName } from '../../db/migrator';
import { testConfig } from './stack';

export interface TestDatabase<S extends ServiceName> {
  name: string;
  /** The service's owner role, as the service itself connects. */
  url: string;
  db: Kysely<DatabaseByService[S]>;
  /** The worker's role (oms_worker), as the worker connects. */
  workerUrl: string;
  worker: Kysely<DatabaseByService[S]>;
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

/** `roleUrl` (a configured URL: its role and password) pointed at database `name` on the test server. */
export function urlForDatabase(roleUrl: string, name: string): string {
  const url = new URL(roleUrl);
  url.host = inject('stack').PG_HOST;
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * Creates an empty database (no migrations). With `service`, it is owned by that service's role and
 * `url` logs in as it; without, it belongs to the administrator, for tests of the migrations themselves.
 */
export async function createEmptyDatabase(prefix: string, service?: ServiceName): Promise<{ name: string; url: string; drop: () => Promise<void> }> {
  const name = `test_${prefix}_${randomBytes(4).toString('hex')}`;
  const ownerUrl = service ? databaseUrl(testConfig(), service) : undefined;
  const owner = ownerUrl ? ` OWNER ${decodeURIComponent(new URL(ownerUrl).username)}` : '';
  await admin((client) => client.query(`CREATE DATABASE ${name}${owner}`));
  let url: string;
  if (ownerUrl) {
    url = urlForDatabase(ownerUrl, name);
  } else {
    const adminUrl = new URL(inject('stack').PG_ADMIN_URL);
    adminUrl.pathname = `/${name}`;
    url = adminUrl.toString();
  }
  return { name, url, drop: () => admin((client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined) };
}

/**
 * Kills every server process connected to the named databases but this one (a PostgreSQL fault:
 * pg_terminate_backend, as an administrator or a failover does). Returns how many were killed.
 */
export async function terminateConnections(databaseNames: readonly string[]): Promise<number> {
  return admin(async (client) => {
    const { rows } = await client.query<{ killed: boolean }>(
      'SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE datname = ANY($1) AND pid <> pg_backend_pid()',
      [databaseNames],
    );
    return rows.filter((row) => row.killed).length;
  });
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

/** Ends a pool and waits until its sockets have closed. */
async function closePool<DB>(db: Kysely<DB>, pool: pg.Pool): Promise<void> {
  // pool.end() resolves before its sockets have closed; dropping the database (WITH FORCE)
  // before then kills those backends and their clients throw 57P01 into the test run.
  const closed = allClientsClosed(pool);
  await db.destroy();
  await closed;
}

export async function createTestDatabase<S extends ServiceName>(service: S): Promise<TestDatabase<S>> {
  const { name, url, drop } = await createEmptyDatabase(service, service);
  const pool = createPool({ connectionString: url, poolMax: 20, applicationName: `oms-test-${service}` });
  const db = databaseOnPool<DatabaseByService[S]>(pool);
  const workerUrl = urlForDatabase(workerDatabaseUrl(testConfig(), service), name);
  const workerPool = createPool({ connectionString: workerUrl, poolMax: 10, applicationName: `oms-test-worker-${service}` });
  const worker = databaseOnPool<DatabaseByService[S]>(workerPool);
  const { privileges } = await migrateToLatest(db, service);
  if (privileges !== 'applied') throw new Error(`${name}: oms_worker's privileges were not applied (${privileges}); global setup provisions the roles`);
  return {
    name,
    url,
    db,
    workerUrl,
    worker,
    destroy: async () => {
      await Promise.all([closePool(db, pool), closePool(worker, workerPool)]);
      await drop();
    },
  };
}
