/**
 * `tsx db/provision.ts`: creates (or brings up to date) the PostgreSQL login roles and the three
 * service databases, as the administrator of DATABASE_ADMIN_URL. Idempotent: a second run changes
 * nothing; on a cluster made by an older OMS (databases and tables owned by postgres) it hands each
 * database and everything in it to its service's role. Role names and passwords come from the
 * database URLs in configuration, so the roles always match what the processes log in with.
 * Privileges on the tables follow with the migrations (db/roles.ts).
 */
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { loadConfig, type Config } from '../lib/config';
import { databaseUrl, workerDatabaseUrl } from './databases';
import { SERVICE_NAMES, type ServiceName } from './migrator';
import { WORKER_ROLE } from './roles';

export class ProvisioningError extends Error {
  override name = 'ProvisioningError';
}

export interface LoginRole {
  role: string;
  password: string;
  /** The variable(s) it comes from, for error messages. */
  source: string;
}

export interface ServiceDatabase {
  service: ServiceName;
  database: string;
  owner: string;
}

const SERVICE_URL_VARIABLES: Record<ServiceName, string> = { order: 'ORDER_DATABASE_URL', product: 'PRODUCT_DATABASE_URL', payment: 'PAYMENT_DATABASE_URL' };
const WORKER_URL_VARIABLES: Record<ServiceName, string> = {
  order: 'WORKER_ORDER_DATABASE_URL',
  product: 'WORKER_PRODUCT_DATABASE_URL',
  payment: 'WORKER_PAYMENT_DATABASE_URL',
};

function credentials(url: string, source: string): LoginRole {
  const parsed = new URL(url);
  const role = decodeURIComponent(parsed.username);
  const password = decodeURIComponent(parsed.password);
  if (!role || !password) throw new ProvisioningError(`${source}: needs a user and a password (postgres://ROLE:PASSWORD@host/db)`);
  return { role, password, source };
}

/** The roles the configured URLs log in as: one owner per service database, and the worker's. */
export function loginRoles(config: Config): { owners: Record<ServiceName, LoginRole>; worker: LoginRole; databases: ServiceDatabase[] } {
  const owners = Object.fromEntries(SERVICE_NAMES.map((service) => [service, credentials(databaseUrl(config, service), SERVICE_URL_VARIABLES[service])])) as Record<ServiceName, LoginRole>;
  const distinct = new Set(Object.values(owners).map((owner) => owner.role));
  if (distinct.size !== SERVICE_NAMES.length) throw new ProvisioningError(`${Object.values(SERVICE_URL_VARIABLES).join(', ')}: each service needs its own role`);
  const workerSources = Object.values(WORKER_URL_VARIABLES).join(', ');
  const workers = SERVICE_NAMES.map((service) => credentials(workerDatabaseUrl(config, service), WORKER_URL_VARIABLES[service]));
  const passwords = new Set(workers.map((w) => w.password));
  if (workers.some((w) => w.role !== WORKER_ROLE) || passwords.size !== 1) {
    throw new ProvisioningError(`${workerSources}: must all log in as ${WORKER_ROLE} with the same password (its privileges are granted to that role)`);
  }
  if (distinct.has(WORKER_ROLE)) throw new ProvisioningError(`${Object.values(SERVICE_URL_VARIABLES).join(', ')}: ${WORKER_ROLE} is the worker's role, not a service's`);
  const databases = SERVICE_NAMES.map((service) => ({ service, database: decodeURIComponent(new URL(databaseUrl(config, service)).pathname.slice(1)), owner: owners[service].role }));
  return { owners, worker: { role: WORKER_ROLE, password: [...passwords][0] as string, source: workerSources }, databases };
}

// Concurrent provisioners (two test runs, two deployments) would collide on the catalog rows.
const PROVISIONING_LOCK_KEY = 0x6f6d7372; // "omsr"

async function withAdmin<T>(url: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, application_name: 'oms-provision', connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

/**
 * Creates each login role, or sets its password and strips any extra power it was given: a service
 * role may own its database and nothing more. Refuses to touch a superuser (a URL that logs in as
 * postgres is a configuration mistake, not a role to demote).
 */
export async function ensureLoginRoles(admin: pg.Client, roles: readonly LoginRole[]): Promise<void> {
  await admin.query('SELECT pg_advisory_lock($1::bigint)', [PROVISIONING_LOCK_KEY]);
  try {
    for (const { role, password, source } of roles) {
      const { rows } = await admin.query<{ rolsuper: boolean }>('SELECT rolsuper FROM pg_roles WHERE rolname = $1', [role]);
      if (rows[0]?.rolsuper) throw new ProvisioningError(`${source}: ${role} is a superuser; each process needs a role of its own`);
      const verb = rows.length === 0 ? 'CREATE' : 'ALTER';
      await admin.query(
        `${verb} ROLE ${admin.escapeIdentifier(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD ${admin.escapeLiteral(password)}`,
      );
    }
  } finally {
    await admin.query('SELECT pg_advisory_unlock($1::bigint)', [PROVISIONING_LOCK_KEY]);
  }
}

/**
 * Hands everything in a database's public schema to `owner`: tables (their sequences follow),
 * standalone sequences and functions that an older setup created as another role.
 */
export async function transferOwnership(client: pg.Client, owner: string): Promise<void> {
  const target = client.escapeLiteral(owner);
  await client.query(`
    DO $$
    DECLARE
      owner_oid oid := (SELECT oid FROM pg_roles WHERE rolname = ${target});
      item record;
    BEGIN
      FOR item IN
        SELECT c.oid::regclass AS name FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND c.relowner <> owner_oid
      LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO %I', item.name, ${target});
      END LOOP;
      FOR item IN
        SELECT c.oid::regclass AS name FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'S' AND c.relowner <> owner_oid
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i'))
      LOOP
        EXECUTE format('ALTER SEQUENCE %s OWNER TO %I', item.name, ${target});
      END LOOP;
      FOR item IN
        SELECT p.oid::regprocedure AS name FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace AND p.proowner <> owner_oid
      LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO %I', item.name, ${target});
      END LOOP;
    END $$`);
}

/** Creates each service database owned by its role, or gives an existing one (and its objects) to that role. */
export async function ensureServiceDatabases(adminUrl: string, databases: readonly ServiceDatabase[]): Promise<string[]> {
  const changes: string[] = [];
  await withAdmin(adminUrl, async (admin) => {
    for (const { database, owner } of databases) {
      const { rows } = await admin.query<{ owner: string }>('SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1', [database]);
      const current = rows[0]?.owner;
      if (current === undefined) {
        await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(database)} OWNER ${admin.escapeIdentifier(owner)}`);
        changes.push(`${database}: created, owned by ${owner}`);
      } else if (current !== owner) {
        await admin.query(`ALTER DATABASE ${admin.escapeIdentifier(database)} OWNER TO ${admin.escapeIdentifier(owner)}`);
        changes.push(`${database}: owner ${current} -> ${owner}`);
      }
    }
  });
  for (const { database, owner } of databases) {
    const url = new URL(adminUrl);
    url.pathname = `/${encodeURIComponent(database)}`;
    await withAdmin(url.toString(), (client) => transferOwnership(client, owner));
  }
  return changes;
}

/** Roles, then databases: what `./oms up` runs before migrating. */
export async function provision(config: Config): Promise<string[]> {
  const { owners, worker, databases } = loginRoles(config);
  await withAdmin(config.DATABASE_ADMIN_URL, (admin) => ensureLoginRoles(admin, [...Object.values(owners), worker]));
  return ensureServiceDatabases(config.DATABASE_ADMIN_URL, databases);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const changes = await provision(loadConfig());
  console.log(changes.length > 0 ? `postgres: ${changes.join('; ')}` : 'postgres: roles and databases up to date');
}
