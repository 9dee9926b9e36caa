/**
 * The saga starter: drains the saga start intents that POST /orders commits with each order
 * (saga_start_intents) into createOrder runs on Temporal. The transactional outbox pattern, for
 * Temporal instead of Kafka: the order and its intent exist together or not at all, and the
 * intent is deleted only once the saga exists, so no accepted order is left without its saga.
 *
 * - Woken when an intent commits (the order service rings after its commit, db/wake-up.ts); polls
 *   as well, so a lost ring or LISTEN connection only slows it.
 * - Starts many sagas at once (SAGA_STARTER_CONCURRENCY), claimed in batches under a lease, so two
 *   worker processes never start from the same intents and a process that dies mid-batch leaves
 *   them to the next claim when the lease ends.
 * - The workflow id is the order's (order-<id>) with REJECT_DUPLICATE: a start repeated after a
 *   crash, a lease that ran out or a lost answer finds the saga already there, which counts as done.
 * - A failed start (Temporal down or slow) waits out an exponential backoff and is tried again, for
 *   as long as it takes; orders keep being accepted meanwhile (admission control bounds how many).
 * - An intent whose order is no longer PENDING (cancelled before its saga started) is dropped.
 */
import type { Client } from '@temporalio/client';
import pg from 'pg';
import { pino, type Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { clientConfig, type DatabaseOptions } from '../db/connection';
import { databaseOptions, openWorkerDatabase, workerDatabaseUrl } from '../db/databases';
import { Doorbell, WAKE_UP_CHANNELS } from '../db/wake-up';
import { orderSagasFor } from '../services/order/app';
import type { OrderSagas } from '../services/order/order-sagas';
import { createOrderInputOf } from '../services/order/orders';
import { claimDueIntents, deleteIntents, findOrdersWithItems, postponeIntent, type ClaimedIntent, type OrderDb, type OrderWithItems } from '../services/order/repository';
import type { Config } from '../lib/config';
import { withCorrelationId } from '../lib/correlation';
import { loggerOptions } from '../lib/logger';
import { errorMessage, retryDelayMs } from './outbox-relay/relay';

export type StartOutcome = 'started' | 'already_started' | 'dropped' | 'failed';

export interface SagaStarterOptions {
  /** order_db as the worker reaches it. */
  db: OrderDb;
  /** Where the LISTEN connection goes (the same database). */
  listener: DatabaseOptions;
  sagas: Pick<OrderSagas, 'startCreateOrder'>;
  config: Pick<
    Config,
    | 'CHECKOUT_HOLD_TTL_SECONDS'
    | 'HTTP_CLIENT_TIMEOUT_MS'
    | 'SAGA_STARTER_CONCURRENCY'
    | 'SAGA_STARTER_BATCH_SIZE'
    | 'SAGA_STARTER_POLL_INTERVAL_MS'
    | 'SAGA_STARTER_RETRY_BASE_MS'
    | 'SAGA_STARTER_RETRY_MAX_MS'
  >;
  log: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** Where oms_saga_starts_total goes; a private registry when absent. */
  registry?: Registry;
}

export interface SagaStarter {
  /** One claim-and-start round: what happened to each intent it claimed. */
  drainOnce(): Promise<Record<StartOutcome, number>>;
  stop(): Promise<void>;
}

/** Runs `task` over `items`, at most `limit` at a time. */
async function forEachConcurrently<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await task(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

/**
 * One claim-and-start round over the due intents (what the starter's loop runs; tests run it alone).
 * Returns what happened to each intent it claimed.
 */
export function createSagaStartRound({ db, sagas, config, log, registry }: Omit<SagaStarterOptions, 'listener'>): () => Promise<Record<StartOutcome, number>> {
  const starts = new Counter({
    name: 'oms_saga_starts_total',
    help: 'Saga start intents handled by the starter, by outcome (failed ones are retried after a backoff)',
    labelNames: ['outcome'],
    registers: registry ? [registry] : [],
  });
  // Longer than a start may take (one Temporal call, bounded by HTTP_CLIENT_TIMEOUT_MS, per lane in turn).
  const leaseSeconds = Math.ceil(((config.HTTP_CLIENT_TIMEOUT_MS / 1000) * config.SAGA_STARTER_BATCH_SIZE) / config.SAGA_STARTER_CONCURRENCY) + 30;

  /** The outcome, and for a failed start why (the round logs one line, not one per order). */
  async function startOne(intent: ClaimedIntent, orders: Map<string, OrderWithItems>): Promise<StartOutcome | { failed: string }> {
    const order = orders.get(intent.order_id);
    if (!order || order.order.status !== 'PENDING') return 'dropped';
    try {
      // The saga carries the correlation id of the POST /orders that asked for it.
      const started = await withCorrelationId(intent.correlation_id, () => sagas.startCreateOrder(createOrderInputOf(order, config.CHECKOUT_HOLD_TTL_SECONDS)));
      return started ? 'started' : 'already_started';
    } catch (error) {
      const attempts = intent.attempts + 1;
      await postponeIntent(db, intent.order_id, attempts, errorMessage(error), retryDelayMs(attempts, config.SAGA_STARTER_RETRY_BASE_MS, config.SAGA_STARTER_RETRY_MAX_MS));
      return { failed: errorMessage(error) };
    }
  }

  async function drainOnce(): Promise<Record<StartOutcome, number>> {
    const tally: Record<StartOutcome, number> = { started: 0, already_started: 0, dropped: 0, failed: 0 };
    const claimed = await claimDueIntents(db, config.SAGA_STARTER_BATCH_SIZE, leaseSeconds);
    if (claimed.length === 0) return tally;
    const orders = new Map((await findOrdersWithItems(db, claimed.map((intent) => intent.order_id))).map((found) => [found.order.id, found]));
    const done: string[] = [];
    let lastError: string | undefined;
    await forEachConcurrently(claimed, config.SAGA_STARTER_CONCURRENCY, async (intent) => {
      const result = await startOne(intent, orders);
      const outcome = typeof result === 'string' ? result : 'failed';
      if (typeof result === 'string') done.push(intent.order_id);
      else lastError = result.failed;
      tally[outcome] += 1;
      starts.inc({ outcome });
    });
    // Deleted only now: a crash before this line repeats the starts, which find their sagas and are no-ops.
    await deleteIntents(db, done);
    if (lastError !== undefined) log.warn({ ...tally, err: lastError }, 'createOrder sagas not started; each is retried after its backoff');
    return tally;
  }

  return drainOnce;
}

export function startSagaStarter(options: SagaStarterOptions): SagaStarter {
  const { listener, config, log } = options;
  const drainOnce = createSagaStartRound(options);
  const wakeUp = new Doorbell();
  let stopping = false;
  let listenClient: pg.Client | undefined;
  let reconnectTimer: NodeJS.Timeout | undefined;

  const listen = async (): Promise<void> => {
    if (stopping) return;
    const client = new pg.Client(clientConfig({ ...listener, applicationName: 'oms-saga-starter-listener' }));
    listenClient = client;
    const retry = () => {
      if (stopping || listenClient !== client) return;
      listenClient = undefined;
      client.end().catch(() => undefined);
      reconnectTimer = setTimeout(() => void listen(), config.SAGA_STARTER_POLL_INTERVAL_MS);
    };
    client.on('notification', () => wakeUp.ring());
    client.on('error', (error) => {
      log.warn({ err: error.message }, 'saga starter LISTEN connection lost; polling until it is back');
      retry();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${WAKE_UP_CHANNELS.sagaStarts}`);
      // Intents committed while nobody listened are due already: look now.
      wakeUp.ring();
    } catch (error) {
      log.warn({ err: errorMessage(error) }, 'saga starter cannot LISTEN; polling');
      retry();
    }
  };
  void listen();

  const loop = (async () => {
    while (!stopping) {
      let claimedAll = 0;
      try {
        const tally = await drainOnce();
        claimedAll = tally.started + tally.already_started + tally.dropped + tally.failed;
      } catch (error) {
        log.error({ err: errorMessage(error) }, 'saga starter round failed; retrying');
      }
      // A full batch means more may be due: go again at once.
      if (claimedAll < config.SAGA_STARTER_BATCH_SIZE && !stopping) await wakeUp.wait(config.SAGA_STARTER_POLL_INTERVAL_MS);
    }
  })();

  return {
    drainOnce,
    stop: async () => {
      stopping = true;
      clearTimeout(reconnectTimer);
      wakeUp.ring();
      await loop;
      await listenClient?.end().catch(() => undefined);
    },
  };
}

/**
 * The worker process's starter: order_db as the worker role, and a client on the NativeConnection
 * the saga worker polls with, so each start asks for eager execution (the first workflow task comes
 * back with the start's answer instead of through the task queue).
 */
export function startWorkerSagaStarter({ config, client, registry }: { config: Config; client: Client; registry: Registry }): SagaStarter {
  const db = openWorkerDatabase(config, 'order', 'oms-saga-starter');
  const starter = startSagaStarter({
    db,
    listener: databaseOptions(config, workerDatabaseUrl(config, 'order'), 'oms-saga-starter-listener'),
    sagas: orderSagasFor(client, config, { requestEagerStart: true }),
    config,
    log: pino(loggerOptions(config, 'oms-worker')).child({ component: 'saga-starter' }),
    registry,
  });
  return {
    drainOnce: () => starter.drainOnce(),
    stop: async () => {
      await starter.stop();
      await db.destroy();
    },
  };
}
