/**
 * Admission control of POST /orders: an order is only worth accepting if its saga can run soon.
 * When the backlog of PENDING orders (saga not started, or started and not finished) reaches
 * ORDER_ADMISSION_MAX_BACKLOG, new orders are refused with 503 ORDER_BACKLOG_FULL and Retry-After
 * instead of piling up work that would finish long after the client gave up.
 *
 * The backlog is counted by one query every ORDER_ADMISSION_REFRESH_MS, not per request: the
 * check costs nothing on the hot path, and the bound can be overshot by what arrives within one
 * refresh interval. /metrics shows the same figures (oms_order_saga_backlog).
 */
import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import { ApiError } from '../shared/errors';
import { ORDER_ERROR_CODES } from './schemas';
import { countSagaBacklog, type OrderDb } from './repository';

export interface AdmissionControl {
  /** Undefined while orders are admitted; otherwise the 503 ORDER_BACKLOG_FULL to answer and its Retry-After. */
  refusal(): { error: ApiError; retryAfterSeconds: number } | undefined;
  /** Counts the backlog now (tests, and start-up before the first interval). */
  refresh(): Promise<void>;
  stop(): void;
}

export interface AdmissionOptions {
  db: OrderDb;
  registry: Registry;
  maxBacklog: number;
  retryAfterSeconds: number;
  refreshMs: number;
  log: Pick<Logger, 'warn'>;
}

export function startAdmissionControl({ db, registry, maxBacklog, retryAfterSeconds, refreshMs, log }: AdmissionOptions): AdmissionControl {
  let pending = 0;
  const backlog = new Gauge({
    name: 'oms_order_saga_backlog',
    help: 'PENDING orders by saga stage: not_started (a start intent waits), running (started, not finished)',
    labelNames: ['stage'],
    registers: [registry],
  });
  new Gauge({
    name: 'oms_order_saga_backlog_limit',
    help: 'ORDER_ADMISSION_MAX_BACKLOG: PENDING orders beyond which POST /orders answers 503',
    registers: [registry],
  }).set(maxBacklog);

  const refresh = async () => {
    const counts = await countSagaBacklog(db);
    pending = counts.pending;
    backlog.set({ stage: 'not_started' }, counts.notStarted);
    backlog.set({ stage: 'running' }, Math.max(0, counts.pending - counts.notStarted));
  };
  // The last count stands while the database does not answer: the order's own transaction would fail anyway.
  const timer = setInterval(() => {
    refresh().catch((error: unknown) => log.warn({ err: error }, 'counting the saga backlog failed'));
  }, refreshMs);
  timer.unref();

  return {
    refusal() {
      if (pending < maxBacklog) return undefined;
      const error = new ApiError(503, ORDER_ERROR_CODES.orderBacklogFull, `too many orders are waiting for their saga (${pending}, at most ${maxBacklog}); retry later`, {
        backlog: pending,
        limit: maxBacklog,
      });
      return { error, retryAfterSeconds };
    },
    refresh,
    stop: () => clearInterval(timer),
  };
}
