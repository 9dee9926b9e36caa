/** Kysely over node-postgres, with the type parsing, timeouts and TLS every OMS database connection uses. */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Kysely, PostgresDialect, sql, type PostgresPool, type PostgresPoolClient } from 'kysely';
import pg from 'pg';
import { withWakeUps } from './wake-up';

// BIGINT (int8) columns hold money in minor units and counters. node-postgres returns them as
// strings; we parse them to numbers and refuse values that a JS number cannot hold exactly.
pg.types.setTypeParser(pg.types.builtins.INT8, (value: string) => {
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed)) throw new RangeError(`int8 value ${value} exceeds Number.MAX_SAFE_INTEGER`);
  return parsed;
});
// NUMERIC stays a string: exact decimals are never turned into floats.

/**
 * Bounds on every session, so a stuck query or lock holder cannot take a pool with it. 0 leaves a
 * setting to the server (no limit unless the role or database has a default): migrations use that.
 */
export interface SessionTimeouts {
  /** Wait for a pooled connection (a free one, or a new one being opened). */
  acquireMs: number;
  statementMs: number;
  lockMs: number;
  idleInTransactionMs: number;
}

/** Without configuration (tools, tests): the defaults of lib/config.ts. */
export const DEFAULT_SESSION_TIMEOUTS: SessionTimeouts = { acquireMs: 5_000, statementMs: 10_000, lockMs: 5_000, idleInTransactionMs: 60_000 };

/** Migrations may rewrite a table or wait for another migrator's lock: no statement or lock bound. */
export const MIGRATION_SESSION_TIMEOUTS: SessionTimeouts = { ...DEFAULT_SESSION_TIMEOUTS, statementMs: 0, lockMs: 0 };

export interface DatabaseOptions {
  connectionString: string;
  poolMax?: number;
  /** Shown in pg_stat_activity, so an operator can tell which process holds a connection. */
  applicationName?: string;
  timeouts?: SessionTimeouts;
  /**
   * PEM file of the CA that signed the server's certificate: TLS with the certificate and host name
   * verified. Without it, `sslmode` in the URL decides (see docs/security-infrastructure.md).
   */
  sslCaFile?: string;
}

/** The node-postgres client settings for `options`; exported so the one-off clients (LISTEN) match the pools. */
export function clientConfig({ connectionString, applicationName = 'oms', timeouts = DEFAULT_SESSION_TIMEOUTS, sslCaFile }: DatabaseOptions): pg.ClientConfig {
  const config: pg.ClientConfig = {
    connectionString,
    application_name: applicationName,
    connectionTimeoutMillis: timeouts.acquireMs,
    // Sent as startup parameters: in force from the session's first statement. Unset: not sent.
    statement_timeout: timeouts.statementMs || undefined,
    lock_timeout: timeouts.lockMs || undefined,
    idle_in_transaction_session_timeout: timeouts.idleInTransactionMs || undefined,
  };
  // An explicit CA beats the URL's sslmode: node-postgres lets URL parameters override `ssl`, so
  // the URL's are stripped (a URL asking for sslmode=disable next to a CA file is a mistake anyway).
  if (sslCaFile) {
    const url = new URL(connectionString);
    for (const name of ['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'ssl']) url.searchParams.delete(name);
    config.connectionString = url.toString();
    config.ssl = { ca: readFileSync(sslCaFile, 'utf8'), rejectUnauthorized: true };
  }
  return config;
}

export function createPool({ poolMax = 10, ...options }: DatabaseOptions): pg.Pool {
  const pool = new pg.Pool({ ...clientConfig(options), max: poolMax });
  // An idle connection that dies (PostgreSQL restarted, backend terminated) is emitted here; without
  // a listener it is an unhandled 'error' that kills the process. The pool drops the connection and
  // the next query opens a new one, so reporting it is all there is to do.
  pool.on('error', (error) => console.error(JSON.stringify({ level: 'warn', msg: 'idle database connection lost', error: error.message })));
  // The pool listens only while a connection is idle. One checked out between two statements (a
  // transaction held across a Kafka publish) that dies emits 'error' on the client with nobody
  // listening: the process crashed on pg_terminate_backend (test/faults). Its next statement fails
  // instead, the transaction rolls back and the pool discards the connection.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

export function createDatabase<DB>(options: DatabaseOptions): Kysely<DB> {
  return databaseOnPool<DB>(createPool(options));
}

/**
 * Kysely over `pool`; a committed insert into the outbox or the start intents wakes its reader
 * (./wake-up.ts), and a statement that opens with PREPARED runs as a prepared statement.
 */
export function databaseOnPool<DB>(pool: pg.Pool): Kysely<DB> {
  return new Kysely<DB>({ dialect: withWakeUps(new PostgresDialect({ pool: preparingPool(pool) })) });
}

const PREPARED_MARKER = '/* prepared */ ';

/**
 * Opens a hot statement (sql`${PREPARED}WITH ...`): node-postgres sends it as a named prepared
 * statement, so PostgreSQL parses it once per connection and, after its first five runs, plans it
 * once too (plan_cache_mode auto: the generic plan, when it costs no more than the custom ones).
 * Unnamed, the TCC statements spent about as long being planned as being run.
 *
 * For statements whose text is the same on every call and whose plan does not depend on the
 * parameters' values. A prepared statement whose result columns a migration changed (a `*` over a
 * table that gained a column) fails with "cached plan must not change result type" on each
 * connection that prepared it: that connection is then closed instead of going back to the pool,
 * so the failure happens once per connection, and the caller's retry gets a fresh one.
 */
export const PREPARED = sql.raw(PREPARED_MARKER);

const preparedNames = new Map<string, string>();

/** The statement's name: from its text, so that every connection, and every process, names it alike. */
function preparedName(text: string): string {
  let name = preparedNames.get(text);
  if (name === undefined) {
    name = `oms_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`;
    preparedNames.set(text, name);
  }
  return name;
}

function isStalePreparedPlan(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return code === '0A000' && typeof message === 'string' && message.includes('cached plan must not change result type');
}

/** `pool` for Kysely, sending PREPARED statements by name; one wrapper per pg client, as Kysely keys its connections by client. */
function preparingPool(pool: pg.Pool): PostgresPool {
  const wrappers = new WeakMap<pg.PoolClient, PostgresPoolClient>();
  const wrap = (client: pg.PoolClient): PostgresPoolClient => {
    let stale = false;
    const wrapper = {
      query(text: unknown, parameters?: readonly unknown[]) {
        if (typeof text !== 'string' || !text.startsWith(PREPARED_MARKER)) return client.query(text as string, parameters as unknown[]);
        return client.query({ name: preparedName(text), text, values: parameters as unknown[] }).catch((error: unknown) => {
          if (isStalePreparedPlan(error)) stale = true;
          throw error;
        });
      },
      release(destroy?: boolean) {
        client.release(destroy || stale);
      },
    };
    // query() passes a cursor (Kysely's streaming) through as pg returns it; the interface types that overload apart.
    return wrapper as unknown as PostgresPoolClient;
  };
  return {
    async connect() {
      const client = await pool.connect();
      let wrapper = wrappers.get(client);
      if (wrapper === undefined) {
        wrapper = wrap(client);
        wrappers.set(client, wrapper);
      }
      return wrapper;
    },
    end: () => pool.end(),
  };
}

/**
 * Which bound a database error is, if any: a statement cancelled by statement_timeout (57014), a
 * lock wait ended by lock_timeout (55P03), or no connection within the acquire timeout. The HTTP
 * error handler answers these 503 (try again), without the database's text.
 */
export function databaseTimeoutKind(error: unknown): 'statement' | 'lock' | 'acquire' | undefined {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (code === '57014') return 'statement';
  if (code === '55P03') return 'lock';
  // pg-pool waiting for a free client, or pg timing out while opening a new one.
  if (typeof message === 'string' && /^timeout exceeded when trying to connect$|^Connection terminated due to connection timeout$/.test(message)) return 'acquire';
  return undefined;
}
