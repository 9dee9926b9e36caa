/** Runs the stock reservation expiry (stock-tcc.ts) on an interval inside the product service. */
import type { FastifyBaseLogger } from 'fastify';
import type { Kysely } from 'kysely';
import type { ProductDatabase } from '../../db/product/schema';
import type { TccMetrics } from '../shared/tcc-metrics';
import { expireStockReservations } from './stock-tcc';

export interface ReservationSweeper {
  /** Stops the interval and waits for a sweep in progress, so the database can close after it. */
  stop: () => Promise<void>;
}

export function startReservationSweeper(
  db: Kysely<ProductDatabase>,
  { intervalMs, logger, metrics }: { intervalMs: number; logger: FastifyBaseLogger; metrics: TccMetrics },
): ReservationSweeper {
  let running: Promise<void> | undefined;
  const sweep = () => {
    // A sweep slower than the interval is not overlapped by the next one.
    if (running) return;
    running = expireStockReservations(db)
      .then(
        (expired) => {
          if (expired > 0) {
            metrics.recordExpired(expired);
            logger.info({ expired }, 'expired stock reservations released');
          }
        },
        (error: unknown) => {
          metrics.recordExpiryError();
          logger.error({ err: error }, 'stock reservation sweep failed');
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
