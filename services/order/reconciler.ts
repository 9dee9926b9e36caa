/**
 * No order may stay PENDING without its saga. POST /orders commits the order and then starts the
 * createOrder saga; if the process dies (or Temporal is unreachable) between the two, the order is
 * committed with nothing driving it. The reconciler finds PENDING orders older than a grace period
 * whose createOrder workflow does not exist, and starts it under the same workflow id, so a saga
 * that did start is never started twice (the id's reuse policy rejects a duplicate anyway).
 */
import type { Logger } from 'pino';
import type { OrderSagas } from './order-sagas';
import { createOrderInputOf } from './orders';
import { findPendingOrdersOlderThan, type OrderDb } from './repository';

export interface ReconcilerDependencies {
  db: OrderDb;
  sagas: OrderSagas;
  holdTtlSeconds: number;
  /** Orders younger than this may be between their commit and their saga start: left alone. */
  minAgeSeconds: number;
  batchSize?: number;
  log: Pick<Logger, 'info' | 'warn' | 'error'>;
}

export interface ReconcileResult {
  checked: number;
  /** Orders whose missing saga this pass started. */
  started: string[];
}

/** One pass: starts the createOrder saga of every PENDING order (past the grace period) that has none. */
export async function reconcilePendingOrders(deps: ReconcilerDependencies): Promise<ReconcileResult> {
  const candidates = await findPendingOrdersOlderThan(deps.db, deps.minAgeSeconds, deps.batchSize ?? 100);
  const started: string[] = [];
  for (const candidate of candidates) {
    const orderId = candidate.order.id;
    try {
      if (await deps.sagas.createOrderExists(orderId)) continue;
      if (await deps.sagas.startCreateOrder(createOrderInputOf(candidate, deps.holdTtlSeconds))) {
        started.push(orderId);
        deps.log.warn({ orderId }, 'started the missing createOrder saga of a PENDING order');
      }
    } catch (error) {
      // One order's failure (Temporal briefly down) must not stop the others; the next pass retries it.
      deps.log.error({ err: error, orderId }, 'reconciling order failed');
    }
  }
  return { checked: candidates.length, started };
}

/** Runs a pass every `intervalMs` (never two at once) until stopped; stop() waits for a running pass. */
export function startOrderReconciler(deps: ReconcilerDependencies & { intervalMs: number }): { stop: () => Promise<void> } {
  let stopped = false;
  let running: Promise<unknown> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = reconcilePendingOrders(deps)
        .catch((error: unknown) => deps.log.error({ err: error }, 'order reconciler pass failed'))
        .finally(schedule);
    }, deps.intervalMs);
    timer.unref();
  };
  schedule();
  return {
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
