/** Kysely over node-postgres, with the type parsing every OMS database relies on. */
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';

// BIGINT (int8) columns hold money in minor units and counters. node-postgres returns them as
// strings; we parse them to numbers and refuse values that a JS number cannot hold exactly.
pg.types.setTypeParser(pg.types.builtins.INT8, (value: string) => {
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed)) throw new RangeError(`int8 value ${value} exceeds Number.MAX_SAFE_INTEGER`);
  return parsed;
});
// NUMERIC stays a string: exact decimals are never turned into floats.

export interface DatabaseOptions {
  connectionString: string;
  poolMax?: number;
  /** Shown in pg_stat_activity, so an operator can tell which process holds a connection. */
  applicationName?: string;
}

export function createPool({ connectionString, poolMax = 10, applicationName = 'oms' }: DatabaseOptions): pg.Pool {
  const pool = new pg.Pool({ connectionString, max: poolMax, application_name: applicationName });
  // An idle connection that dies (PostgreSQL restarted, backend terminated) is emitted here; without
  // a listener it is an unhandled 'error' that kills the process. The pool drops the connection and
  // the next query opens a new one, so reporting it is all there is to do.
  pool.on('error', (error) => console.error(JSON.stringify({ level: 'warn', msg: 'idle database connection lost', error: error.message })));
  return pool;
}

export function createDatabase<DB>(options: DatabaseOptions): Kysely<DB> {
  return new Kysely<DB>({ dialect: new PostgresDialect({ pool: createPool(options) }) });
}
