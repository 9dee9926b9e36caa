/**
 * The scripts' side of least privilege, on clusters of the test's own (other ports, temporary state
 * directories): infra/stack.sh's authentication rules, db/provision.ts's roles and databases, and
 * a cluster made by an older checkout (trust for everyone, everything owned by postgres) converging.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { migrateToLatest, SERVICE_NAMES } from '../../db/migrator';
import { asPostgres, startThrowawayCluster } from '../helpers/throwaway-postgres';

const run = promisify(execFile);

/** The configuration `./oms up` would use, pointed at a cluster on `port`. */
function envFor(port: number, stateDir: string): NodeJS.ProcessEnv {
  const url = (role: string, password: string, db: string) => `postgres://${role}:${password}@127.0.0.1:${port}/${db}`;
  return {
    ...process.env,
    NODE_ENV: 'development',
    OMS_STATE_DIR: stateDir,
    OMS_PG_PORT: String(port),
    DATABASE_ADMIN_URL: `postgres://postgres@localhost/postgres?host=/tmp&port=${port}`,
    ORDER_DATABASE_URL: url('oms_order', 'oms-dev-order', 'order_db'),
    PRODUCT_DATABASE_URL: url('oms_product', 'oms-dev-product', 'product_db'),
    PAYMENT_DATABASE_URL: url('oms_payment', 'oms-dev-payment', 'payment_db'),
    WORKER_ORDER_DATABASE_URL: url('oms_worker', 'oms-dev-worker', 'order_db'),
    WORKER_PRODUCT_DATABASE_URL: url('oms_worker', 'oms-dev-worker', 'product_db'),
    WORKER_PAYMENT_DATABASE_URL: url('oms_worker', 'oms-dev-worker', 'payment_db'),
  };
}

async function login(port: number, user: string, password: string, database: string): Promise<pg.Client> {
  const client = new pg.Client({ host: '127.0.0.1', port, user, password, database, connectionTimeoutMillis: 5_000 });
  await client.connect();
  return client;
}

/** The SQLSTATE a login fails with. */
async function loginError(port: number, user: string, password: string, database: string): Promise<string | undefined> {
  try {
    const client = await login(port, user, password, database);
    await client.end();
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  }
}

async function query<T extends pg.QueryResultRow>(port: number, user: string, password: string, database: string, text: string): Promise<T[]> {
  const client = await login(port, user, password, database);
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}

describe('PostgreSQL roles on a cluster started by infra/stack.sh', () => {
  const port = 25433;
  let env: NodeJS.ProcessEnv;
  let stateDir: string;
  const script = (command: string, ...args: string[]) => run(command, args, { env, timeout: 120_000 });

  afterAll(async () => {
    if (env) await script('bash', 'infra/stack.sh', 'stop', 'postgres').catch(() => undefined);
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  it('lets each role in with its password only, the superuser through the socket only, and converges on a second run', async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'oms-pg-roles-'));
    await chmod(stateDir, 0o755);
    env = envFor(port, stateDir);
    await script('bash', 'infra/stack.sh', 'start', 'postgres');
    const provisioned = await script('npx', '--no-install', 'tsx', 'db/provision.ts');
    expect(provisioned.stdout).toContain('order_db: created, owned by oms_order');
    await script('npx', '--no-install', 'tsx', 'db/migrate.ts');

    // Passwords over TCP (SCRAM): the right one, a wrong one, and the superuser, who has none.
    await expect(query(port, 'oms_order', 'oms-dev-order', 'order_db', 'SELECT 1 AS one')).resolves.toEqual([{ one: 1 }]);
    expect(await loginError(port, 'oms_order', 'wrong', 'order_db')).toBe('28P01');
    expect(await loginError(port, 'postgres', 'anything', 'postgres')).toBe('28P01');
    // Only root and the cluster's OS user may use the socket where postgres is trusted.
    expect((await stat(`/tmp/.s.PGSQL.${port}`)).mode & 0o777).toBe(0o700);

    // Migrations ran as the owner: every table belongs to the service's role.
    const owners = await query<{ tableowner: string }>(port, 'oms_order', 'oms-dev-order', 'order_db', "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'");
    expect(owners).toEqual([{ tableowner: 'oms_order' }]);
    expect(await loginError(port, 'oms_product', 'oms-dev-product', 'payment_db')).toBe('42501');

    await script('bash', 'infra/stack.sh', 'start', 'postgres');
    expect((await script('npx', '--no-install', 'tsx', 'db/provision.ts')).stdout).toContain('roles and databases up to date');
    expect((await script('npx', '--no-install', 'tsx', 'db/migrate.ts')).stdout).not.toContain('applied');
  });
});

describe('a cluster made by an older checkout (trust for everyone, everything owned by postgres)', () => {
  const port = 25434;
  let stateDir: string;
  let env: NodeJS.ProcessEnv;
  const script = (command: string, ...args: string[]) => run(command, args, { env, timeout: 120_000 });

  afterAll(async () => {
    if (env) await script('bash', 'infra/stack.sh', 'stop', 'postgres').catch(() => undefined);
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  it('converges under a second ./oms up: password logins, databases and tables handed to their roles, data kept', async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'oms-pg-old-'));
    await chmod(stateDir, 0o755);
    env = envFor(port, stateDir);
    // What the older infra/stack.sh left behind: trust everywhere, databases and tables made by postgres.
    const old = await startThrowawayCluster({
      port,
      data: join(stateDir, 'postgres'),
      hba: 'local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust',
      settings: ['max_connections=200'],
    });
    const admin = new pg.Client({ connectionString: old.adminUrl });
    await admin.connect();
    for (const service of SERVICE_NAMES) await admin.query(`CREATE DATABASE ${service}_db`);
    await admin.end();
    for (const service of SERVICE_NAMES) {
      const url = new URL(old.adminUrl);
      url.pathname = `/${service}_db`;
      const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url.toString(), max: 2 }) }) });
      expect((await migrateToLatest(db, service)).privileges).toBe('worker-role-missing');
      await db.destroy();
    }
    await asPostgres('psql', ['-h', '/tmp', '-p', String(port), '-U', 'postgres', '-d', 'order_db', '-c', "INSERT INTO customers (name, email) VALUES ('Ada', 'ada@example.com')"]);
    expect(await loginError(port, 'postgres', 'anything', 'postgres')).toBeUndefined();

    // The second `./oms up`: stack start (server already running), provision, migrate.
    await script('bash', 'infra/stack.sh', 'start', 'postgres');
    const provisioned = await script('npx', '--no-install', 'tsx', 'db/provision.ts');
    expect(provisioned.stdout).toContain('order_db: owner postgres -> oms_order');
    const migrated = await script('npx', '--no-install', 'tsx', 'db/migrate.ts');
    expect(migrated.stderr).not.toContain('oms_worker does not exist');

    expect(await loginError(port, 'postgres', 'anything', 'postgres')).toBe('28P01');
    const tables = await query<{ tableowner: string }>(port, 'oms_order', 'oms-dev-order', 'order_db', "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'");
    expect(tables).toEqual([{ tableowner: 'oms_order' }]);
    const sequences = await query<{ owner: string }>(port, 'oms_order', 'oms-dev-order', 'order_db', "SELECT DISTINCT pg_get_userbyid(relowner) AS owner FROM pg_class WHERE relkind = 'S'");
    expect(sequences).toEqual([{ owner: 'oms_order' }]);
    await expect(query(port, 'oms_order', 'oms-dev-order', 'order_db', 'SELECT email FROM customers')).resolves.toEqual([{ email: 'ada@example.com' }]);
    // The owner can still migrate (ALTER needs ownership), and the worker has its privileges.
    await expect(query(port, 'oms_order', 'oms-dev-order', 'order_db', 'ALTER TABLE customers ADD COLUMN probe INT')).resolves.toEqual([]);
    await expect(query(port, 'oms_worker', 'oms-dev-worker', 'order_db', 'SELECT count(*)::int AS n FROM customers')).resolves.toEqual([{ n: 1 }]);
    await expect(query(port, 'oms_worker', 'oms-dev-worker', 'product_db', 'SELECT count(*)::int AS n FROM outbox_events')).resolves.toEqual([{ n: 0 }]);
  });
});
