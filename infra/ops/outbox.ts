/**
 * Operator commands for the transactional outbox (`./oms outbox ...`):
 *
 *   status                                   rows per database and status, and the oldest PENDING row's age
 *   requeue [--db order|product|payment] [--id N]
 *                                            FAILED rows back to PENDING with a fresh retry budget
 *                                            (all databases and all FAILED rows unless narrowed)
 *
 * Requeue after fixing what made the event fail (its dead letter on oms.dlq says why). A requeued
 * event is published after its aggregate's later events, which already went out.
 */
import { parseArgs } from 'node:util';
import type { Kysely } from 'kysely';
import { openServiceDatabase } from '../../db/databases';
import type { SharedTables } from '../../lib/shared-tables';
import { loadConfig } from '../../lib/config';
import { countByStatus, requeueFailed } from '../../workers/outbox-relay/store';
import { OUTBOX_DATABASES, type OutboxDatabaseName } from '../../workflows/outbox-relay-contract';

const USAGE = 'usage: ./oms outbox status | ./oms outbox requeue [--db order|product|payment] [--id N]';

class UsageError extends Error {}

function parseCommand(argv: string[]): { command: 'status' | 'requeue'; databases: OutboxDatabaseName[]; id?: number } {
  const { positionals, values } = parseArgs({ args: argv, allowPositionals: true, options: { db: { type: 'string' }, id: { type: 'string' } } });
  const [command, ...rest] = positionals;
  if ((command !== 'status' && command !== 'requeue') || rest.length > 0) throw new UsageError(USAGE);
  if (command === 'status' && (values.db !== undefined || values.id !== undefined)) throw new UsageError(USAGE);
  let databases = [...OUTBOX_DATABASES];
  if (values.db !== undefined) {
    if (!OUTBOX_DATABASES.includes(values.db as OutboxDatabaseName)) throw new UsageError(`--db must be one of ${OUTBOX_DATABASES.join(', ')}`);
    databases = [values.db as OutboxDatabaseName];
  }
  let id: number | undefined;
  if (values.id !== undefined) {
    id = Number(values.id);
    if (!Number.isSafeInteger(id) || id <= 0) throw new UsageError('--id must be a positive integer (an outbox_events id)');
    if (values.db === undefined) throw new UsageError('--id needs --db: ids are per database');
  }
  return { command, databases, id };
}

async function main(): Promise<void> {
  const { command, databases, id } = parseCommand(process.argv.slice(2));
  const config = loadConfig();
  for (const database of databases) {
    const db = openServiceDatabase(config, database, 'oms-ops-outbox') as unknown as Kysely<SharedTables>;
    try {
      if (command === 'status') {
        const counts = await countByStatus(db);
        const oldest = await db
          .selectFrom('outbox_events')
          .select((eb) => eb.fn.min('created_at').as('created_at'))
          .where('status', '=', 'PENDING')
          .executeTakeFirst();
        const age = oldest?.created_at ? `${Math.round((Date.now() - new Date(oldest.created_at).getTime()) / 1000)}s` : '-';
        console.log(`${`${database}_db`.padEnd(11)} PENDING ${counts.PENDING}  PUBLISHED ${counts.PUBLISHED}  FAILED ${counts.FAILED}  oldest pending ${age}`);
      } else {
        const requeued = await requeueFailed(db, id === undefined ? {} : { id });
        console.log(`${database}_db: requeued ${requeued.length}${requeued.length > 0 ? ` (ids ${requeued.join(', ')})` : ''}`);
        if (id !== undefined && requeued.length === 0) process.exitCode = 1;
      }
    } finally {
      await db.destroy();
    }
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof UsageError ? error.message : error instanceof Error ? (error.stack ?? error.message) : error);
  process.exit(error instanceof UsageError ? 2 : 1);
});
