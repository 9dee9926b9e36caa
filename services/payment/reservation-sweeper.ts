/**
 * Expires payment holds nobody confirmed or cancelled within RESERVATION_TTL_SECONDS (a TCC
 * transaction whose coordinator vanished must not hold money forever; see docs/design.md):
 * every RESERVATION_SWEEP_INTERVAL_MS, batches until none is overdue.
 */
import type { Kysely } from 'kysely';
import type { FastifyBaseLogger } from 'fastify';
import type { PaymentDatabase } from '../../db/payment/schema';
import { expirePaymentReservations } from './ledger';
import type { TccMetrics } from '../shared/tcc-metrics';

export interface ReservationSweeper {
  /** Runs one sweep now (also what the timer does); resolves with how many holds expired. */
  sweep: () => Promise<number>;
  stop: () => Promise<void>;
}

export function startReservationSweeper(options: {
  db: Kysely<PaymentDatabase>;
  intervalMs: number;
  batchSize?: number;
  log: FastifyBaseLogger;
  metrics: TccMetrics;
}): ReservationSweeper {
  const { db, intervalMs, batchSize = 100, log, metrics } = options;
  let running: Promise<number> | undefined;

  const sweepAll = async (): Promise<number> => {
    let total = 0;
    for (;;) {
      const expired = await expirePaymentReservations(db, batchSize);
      total += expired;
      metrics.recordExpired(expired);
      if (expired < batchSize) return total;
    }
  };
  // One sweep at a time in this process; other processes are kept apart by SKIP LOCKED.
  const sweep = () => {
    running ??= sweepAll().finally(() => {
      running = undefined;
    });
    return running;
  };

  const timer = setInterval(() => {
    sweep().then(
      (expired) => expired > 0 && log.info({ expired }, 'expired payment reservations released'),
      (error: unknown) => log.error({ err: error }, 'payment reservation sweep failed'),
    );
  }, intervalMs);
  timer.unref();

  return {
    sweep,
    stop: async () => {
      clearInterval(timer);
      await running?.catch(() => undefined);
    },
  };
}
