/**
 * Wake-ups: how a committed outbox row or saga start intent reaches its reader (the outbox relay,
 * the saga starter) in milliseconds instead of at the reader's next poll.
 *
 * The reader LISTENs on a channel; the writer rings it with a NOTIFY after its transaction has
 * committed, never inside it. PostgreSQL serialises the commits of notifying transactions across
 * the whole cluster (each holds one lock from before its commit record until that record is on
 * disk), so a NOTIFY inside every order's transaction made every writer of every database commit one
 * at a time (measured in docs/benchmarks.md, "Accept path"). The ring is its own statement, committed
 * with synchronous_commit off (it holds that lock for microseconds, not for a disk flush), and
 * coalesced: while one ring of a channel is on its way, further commits only ask for one more.
 *
 * A lost ring (the process died between commit and ring, the ring failed) costs one poll interval:
 * every reader polls as well, so nothing depends on a ring arriving.
 */
import { CompiledQuery, type DatabaseConnection, type Dialect, type Driver, type Kysely, type QueryResult, type TransactionSettings } from 'kysely';

/** The channels, by what their reader waits for. The values are fixed: readers of older versions LISTEN on them. */
export const WAKE_UP_CHANNELS = {
  /** outbox_events rows to publish (every service database). */
  outbox: 'oms_outbox_events',
  /** saga_start_intents rows to start (order_db). */
  sagaStarts: 'oms_saga_start_intents',
} as const;

export type WakeUpChannel = (typeof WAKE_UP_CHANNELS)[keyof typeof WAKE_UP_CHANNELS];

/** The tables whose inserts ring a channel once committed. */
const CHANNEL_OF_TABLE: Readonly<Record<string, WakeUpChannel>> = {
  outbox_events: WAKE_UP_CHANNELS.outbox,
  saga_start_intents: WAKE_UP_CHANNELS.sagaStarts,
};

// Matches Kysely's compiled inserts (`insert into "outbox_events"`) and hand-written statements,
// data-modifying CTEs included (`... INSERT INTO outbox_events ...`).
const INSERT_INTO = /\binsert\s+into\s+"?(outbox_events|saga_start_intents)"?(?=[\s(])/gi;

/** The channels a statement rings once its transaction commits. */
export function channelsRungBy(statement: string): WakeUpChannel[] {
  const channels = new Set<WakeUpChannel>();
  for (const match of statement.matchAll(INSERT_INTO)) channels.add(CHANNEL_OF_TABLE[match[1]!.toLowerCase()]!);
  return [...channels];
}

/** One statement, its own transaction: the NOTIFY, committed without waiting for the disk. */
const ringStatement = (channel: WakeUpChannel) => CompiledQuery.raw(`SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, '')`, [channel]);

/** Rings `channel` now (an operator's requeue, a test): the readers look at once. */
export async function ringWakeUp<DB>(db: Kysely<DB>, channel: WakeUpChannel): Promise<void> {
  await db.executeQuery(ringStatement(channel));
}

/**
 * A connection that remembers which channels its open transaction will ring. Statements outside a
 * transaction ring as soon as they have run: they have committed.
 */
class WakeUpConnection implements DatabaseConnection {
  inTransaction = false;
  readonly pending = new Set<WakeUpChannel>();

  constructor(
    readonly inner: DatabaseConnection,
    private readonly ring: (channel: WakeUpChannel) => void,
  ) {}

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    const result = await this.inner.executeQuery<R>(compiledQuery);
    for (const channel of channelsRungBy(compiledQuery.sql)) {
      if (this.inTransaction) this.pending.add(channel);
      else this.ring(channel);
    }
    return result;
  }

  streamQuery<R>(compiledQuery: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(compiledQuery, chunkSize);
  }
}

/** Coalesces rings per channel: at most one on its way and one more asked for. */
function createRinger(inner: Driver): { ring: (channel: WakeUpChannel) => void; settled: () => Promise<void> } {
  const onTheWay = new Map<WakeUpChannel, Promise<void>>();
  const again = new Set<WakeUpChannel>();

  const send = async (channel: WakeUpChannel): Promise<void> => {
    const connection = await inner.acquireConnection();
    try {
      await connection.executeQuery(ringStatement(channel));
    } finally {
      await inner.releaseConnection(connection);
    }
  };

  const ring = (channel: WakeUpChannel): void => {
    if (onTheWay.has(channel)) {
      again.add(channel);
      return;
    }
    const sending = send(channel)
      // The reader's poll is the fallback; a ring that failed (the database unreachable) is not an error of the write.
      .catch(() => undefined)
      .finally(() => {
        onTheWay.delete(channel);
        if (again.delete(channel)) ring(channel);
      });
    onTheWay.set(channel, sending);
  };

  return {
    ring,
    settled: async () => {
      while (onTheWay.size > 0) await Promise.all(onTheWay.values());
    },
  };
}

/**
 * The driver of a dialect, ringing after each commit the channels of what the transaction inserted.
 * A rollback forgets them; a rollback to a savepoint keeps them (a ring for rows that were rolled
 * back costs the reader one empty look).
 */
class WakeUpDriver implements Driver {
  private readonly ringer: ReturnType<typeof createRinger>;

  constructor(private readonly inner: Driver) {
    this.ringer = createRinger(inner);
  }

  init(): Promise<void> {
    return this.inner.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    return new WakeUpConnection(await this.inner.acquireConnection(), this.ringer.ring);
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const wrapped = connection as WakeUpConnection;
    await this.inner.beginTransaction(wrapped.inner, settings);
    wrapped.inTransaction = true;
    wrapped.pending.clear();
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const wrapped = connection as WakeUpConnection;
    await this.inner.commitTransaction(wrapped.inner);
    wrapped.inTransaction = false;
    for (const channel of wrapped.pending) this.ringer.ring(channel);
    wrapped.pending.clear();
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    const wrapped = connection as WakeUpConnection;
    wrapped.inTransaction = false;
    wrapped.pending.clear();
    await this.inner.rollbackTransaction(wrapped.inner);
  }

  async savepoint(connection: DatabaseConnection, name: string, compileQuery: Parameters<NonNullable<Driver['savepoint']>>[2]): Promise<void> {
    await this.inner.savepoint!((connection as WakeUpConnection).inner, name, compileQuery);
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string, compileQuery: Parameters<NonNullable<Driver['rollbackToSavepoint']>>[2]): Promise<void> {
    await this.inner.rollbackToSavepoint!((connection as WakeUpConnection).inner, name, compileQuery);
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string, compileQuery: Parameters<NonNullable<Driver['releaseSavepoint']>>[2]): Promise<void> {
    await this.inner.releaseSavepoint!((connection as WakeUpConnection).inner, name, compileQuery);
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    const wrapped = connection as WakeUpConnection;
    // A transaction abandoned without commit or rollback (the connection is being discarded) rings nothing.
    wrapped.inTransaction = false;
    wrapped.pending.clear();
    return this.inner.releaseConnection(wrapped.inner);
  }

  async destroy(): Promise<void> {
    await this.ringer.settled();
    await this.inner.destroy();
  }
}

/** `dialect`, with every committed insert into the outbox or the start intents rung on its channel. */
export function withWakeUps(dialect: Dialect): Dialect {
  return {
    createAdapter: () => dialect.createAdapter(),
    createDriver: () => new WakeUpDriver(dialect.createDriver()),
    createIntrospector: (db) => dialect.createIntrospector(db),
    createQueryCompiler: () => dialect.createQueryCompiler(),
  };
}

/**
 * Wakes a reader's loop. A ring that arrives while the loop is busy is remembered, not lost; the
 * loop clears it just before it looks, so only rings for rows that look may have missed remain.
 */
export class Doorbell {
  private rung = false;
  private wake: (() => void) | null = null;

  ring(): void {
    this.rung = true;
    this.wake?.();
  }

  clear(): void {
    this.rung = false;
  }

  /** Resolves on a ring (or one already rung), after `ms`, or when `signal` aborts. */
  wait(ms: number, signal?: AbortSignal): Promise<void> {
    if (this.rung || ms <= 0 || signal?.aborted) {
      this.rung = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.wake = null;
        this.rung = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
      this.wake = done;
    });
  }
}
