/**
 * Runs a TCC participant's expiry on an interval inside its service, one shape for both: holds
 * nobody confirmed or cancelled within RESERVATION_TTL_SECONDS (their coordinator vanished) are
 * released, every RESERVATION_SWEEP_INTERVAL_MS. The participant's `expireOverdue` releases every
 * overdue hold (in batches, SKIP LOCKED, so other instances' sweeps and live confirms are left
 * alone) and says how many.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { TccMetrics } from './tcc-metrics';

export interface ReservationSweeper {
  /** Stops the interval and waits for a sweep in progress, so the database can close after it. */
  stop: () => Promise<void>;
}

export function startReservationSweeper({
  expireOverdue,
  intervalMs,
  log,
  metrics,
}: {
  expireOverdue: () => Promise<number>;
  intervalMs: number;
  log: FastifyBaseLogger;
  metrics: TccMetrics;
}): ReservationSweeper {
  let running: Promise<void> | undefined;
  const sweep = () => {
    // A sweep slower than the interval is not overlapped by the next one.
    if (running) return;
    running = expireOverdue()
      .then(
        (expired) => {
          if (expired === 0) return;
          metrics.recordExpired(expired);
          log.info({ expired }, 'expired reservations released');
        },
        (error: unknown) => {
          metrics.recordExpiryError();
          log.error({ err: error }, 'reservation sweep failed');
        },
      )
      .finally(() => {
        running = undefined;
      });
  };
  const timer = setInterval(sweep, intervalMs);
  timer.unref();
  return {
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}
