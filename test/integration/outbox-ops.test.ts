/** `./oms outbox status|requeue` (infra/ops/outbox.ts) run as a process against a fresh database. */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { commitOrderEvent } from '../helpers/outbox-relay';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../../infra/ops/outbox.ts', import.meta.url));

describe('./oms outbox', () => {
  let database: TestDatabase<'order'>;
  const outbox = (...args: string[]) =>
    run(process.execPath, ['--import', 'tsx', cli, ...args], {
      // All three databases point at the test database: the command must not touch the dev ones.
      env: { ...process.env, ORDER_DATABASE_URL: database.url, PRODUCT_DATABASE_URL: database.url, PAYMENT_DATABASE_URL: database.url },
    });
  const exitCode = (args: string[]) => outbox(...args).then(() => 0, (error: { code: number }) => error.code);

  beforeAll(async () => {
    database = await createTestDatabase('order');
  });
  afterAll(() => database?.destroy());

  it('shows counts per status and requeues one FAILED row with a fresh retry budget', async () => {
    const pending = await commitOrderEvent(database.db, randomUUID());
    const dead = await commitOrderEvent(database.db, randomUUID());
    const failed = await database.db
      .updateTable('outbox_events')
      .set({ status: 'FAILED', retry_count: 5, error_message: 'MESSAGE_TOO_LARGE: too large' })
      .where('event_id', '=', dead.eventId)
      .returning('id')
      .executeTakeFirstOrThrow();

    const { stdout } = await outbox('status');
    expect(stdout).toMatch(/order_db\s+PENDING 1 {2}PUBLISHED 0 {2}FAILED 1/);

    const requeued = await outbox('requeue', '--db', 'order', '--id', String(failed.id));
    expect(requeued.stdout).toContain(`requeued 1 (ids ${failed.id})`);
    const row = await database.db.selectFrom('outbox_events').selectAll().where('id', '=', failed.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ status: 'PENDING', retry_count: 0, error_message: null });
    expect(row.next_attempt_at.getTime()).toBeLessThanOrEqual(Date.now() + 1_000);
    // The other row was not touched.
    const untouched = await database.db.selectFrom('outbox_events').select('status').where('event_id', '=', pending.eventId).executeTakeFirstOrThrow();
    expect(untouched.status).toBe('PENDING');
  });

  it('fails when asked to requeue a row that is not FAILED, and refuses bad arguments', async () => {
    expect(await exitCode(['requeue', '--db', 'order', '--id', '999999'])).toBe(1);
    expect(await exitCode(['requeue', '--id', '1'])).toBe(2);
    expect(await exitCode(['requeue', '--db', 'orders'])).toBe(2);
    expect(await exitCode(['purge'])).toBe(2);
  });
});
