/**
 * The after-commit wake-up (db/wake-up.ts) against a recording driver: what is rung, when, and how
 * often. The real database's side (no NOTIFY inside the transaction, a ring after commit) is in
 * test/integration/migrations.test.ts.
 */
import { Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler, sql, type CompiledQuery, type DatabaseConnection, type Driver } from 'kysely';
import { describe, expect, it } from 'vitest';
import { channelsRungBy, Doorbell, WAKE_UP_CHANNELS, withWakeUps } from '../../db/wake-up';

interface Tables {
  outbox_events: { event_id: string };
  saga_start_intents: { order_id: string };
  orders: { id: string };
}

/** A driver that runs nothing: it records each statement; a ring can be held until a test lets it go. */
function recordingDatabase() {
  const statements: string[] = [];
  const rings: string[] = [];
  let holdRings: Promise<void> | undefined;
  const connection: DatabaseConnection = {
    async executeQuery<R>(query: CompiledQuery) {
      statements.push(query.sql);
      if (query.sql.includes('pg_notify')) {
        rings.push(String(query.parameters[0]));
        await holdRings;
      }
      return { rows: [] as R[] };
    },
    // eslint-disable-next-line require-yield
    async *streamQuery() {
      throw new Error('not used');
    },
  };
  const driver: Driver = {
    init: async () => undefined,
    acquireConnection: async () => connection,
    beginTransaction: async () => void statements.push('begin'),
    commitTransaction: async () => void statements.push('commit'),
    rollbackTransaction: async () => void statements.push('rollback'),
    releaseConnection: async () => undefined,
    destroy: async () => undefined,
  };
  const db = new Kysely<Tables>({
    dialect: withWakeUps({
      createAdapter: () => new PostgresAdapter(),
      createDriver: () => driver,
      createIntrospector: (kysely) => new PostgresIntrospector(kysely),
      createQueryCompiler: () => new PostgresQueryCompiler(),
    }),
  });
  return {
    db,
    statements,
    rings,
    hold(): () => void {
      let release!: () => void;
      holdRings = new Promise((resolve) => (release = resolve));
      return () => {
        holdRings = undefined;
        release();
      };
    },
  };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('channelsRungBy', () => {
  it('finds inserts into the outbox and the start intents, written by Kysely or by hand, CTEs included', () => {
    expect(channelsRungBy('insert into "outbox_events" ("event_id") values ($1)')).toEqual([WAKE_UP_CHANNELS.outbox]);
    expect(channelsRungBy('WITH o AS (INSERT INTO orders (id) VALUES ($1) RETURNING id), e AS (INSERT INTO outbox_events (event_id) SELECT $2) INSERT INTO saga_start_intents(order_id) SELECT id FROM o')).toEqual([
      WAKE_UP_CHANNELS.outbox,
      WAKE_UP_CHANNELS.sagaStarts,
    ]);
  });

  it('ignores reads, updates and other tables whose names only start the same', () => {
    expect(channelsRungBy('update "outbox_events" set "status" = $1')).toEqual([]);
    expect(channelsRungBy('select * from "outbox_events"')).toEqual([]);
    expect(channelsRungBy('insert into "outbox_events_archive" select * from "outbox_events"')).toEqual([]);
    expect(channelsRungBy('insert into "orders" ("id") values ($1)')).toEqual([]);
  });
});

describe('withWakeUps', () => {
  it('rings after the commit of a transaction that inserted, never before it', async () => {
    const { db, statements, rings } = recordingDatabase();
    await db.transaction().execute(async (trx) => {
      await trx.insertInto('outbox_events').values({ event_id: 'e1' }).execute();
      await trx.insertInto('saga_start_intents').values({ order_id: 'o1' }).execute();
      await settle();
      expect(rings).toEqual([]);
    });
    await settle();
    expect(rings.sort()).toEqual([WAKE_UP_CHANNELS.outbox, WAKE_UP_CHANNELS.sagaStarts].sort());
    // The rings came after the commit, each a statement of its own.
    const commitAt = statements.indexOf('commit');
    expect(statements.findIndex((statement) => statement.includes('pg_notify'))).toBeGreaterThan(commitAt);
  });

  it('rings nothing for a rollback or for a transaction that inserted neither', async () => {
    const { db, rings } = recordingDatabase();
    await expect(
      db.transaction().execute(async (trx) => {
        await trx.insertInto('outbox_events').values({ event_id: 'e1' }).execute();
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    await db.transaction().execute((trx) => trx.insertInto('orders').values({ id: 'o1' }).execute());
    await settle();
    expect(rings).toEqual([]);
  });

  it('rings at once for an insert outside a transaction (it has committed)', async () => {
    const { db, rings } = recordingDatabase();
    await sql`INSERT INTO outbox_events (event_id) VALUES ('e1')`.execute(db);
    await settle();
    expect(rings).toEqual([WAKE_UP_CHANNELS.outbox]);
  });

  it('coalesces: commits made while a ring is on its way ask for one more ring, not one each', async () => {
    const { db, rings, hold } = recordingDatabase();
    const release = hold();
    await db.insertInto('outbox_events').values({ event_id: 'first' }).execute();
    await settle();
    for (let i = 0; i < 5; i += 1) await db.transaction().execute((trx) => trx.insertInto('outbox_events').values({ event_id: `e${i}` }).execute());
    expect(rings).toEqual([WAKE_UP_CHANNELS.outbox]);
    release();
    await expect.poll(() => rings.length).toBe(2);
    await settle();
    expect(rings).toEqual([WAKE_UP_CHANNELS.outbox, WAKE_UP_CHANNELS.outbox]);
  });
});

describe('Doorbell', () => {
  it('remembers a ring that came while nobody waited, and forgets it once cleared', async () => {
    const doorbell = new Doorbell();
    doorbell.ring();
    // Resolves at once; a lost ring would leave this waiting past the test's timeout.
    await doorbell.wait(60_000);

    doorbell.ring();
    doorbell.clear();
    let woken = false;
    const waiting = doorbell.wait(10_000).then(() => (woken = true));
    await settle();
    expect(woken).toBe(false);
    doorbell.ring();
    await waiting;
    expect(woken).toBe(true);
  });

  it('stops waiting when its signal aborts', async () => {
    const doorbell = new Doorbell();
    const controller = new AbortController();
    const waiting = doorbell.wait(10_000, controller.signal);
    controller.abort();
    await expect(waiting).resolves.toBeUndefined();
  });
});
