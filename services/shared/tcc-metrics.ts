/**
 * The TCC participant metrics, one set for both participants (stock in the product service, money
 * in the payment service), on the process registry served at GET /metrics:
 *
 *   oms_tcc_operations_total{participant, operation, outcome}   every try/confirm/cancel/... call
 *   oms_tcc_started_total{participant}                         tries that took a new hold
 *   oms_tcc_completed_total{participant, outcome}              holds ended: confirmed, cancelled, expired
 *   oms_tcc_timeout_total{participant}                         holds nobody confirmed or cancelled in time
 *   oms_tcc_phase_duration_seconds{participant, phase}         time a try, confirm or cancel took here
 *   oms_tcc_active_reservations{participant}                   holds RESERVED now (read from the database)
 *
 * Only calls that changed something move started/completed: a retried try or a repeated cancel is
 * `noop` in oms_tcc_operations_total and nothing else.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { TccPhase } from '../../lib/shared-tables';
import { ApiError } from './errors';

export type TccParticipant = 'stock' | 'payment';
/** The phases, and the participant's other operations on a transaction's hold. */
export type TccOperation = TccPhase | 'expire' | 'restock' | 'refund';
/** applied: the call changed state; noop: an idempotent repeat; barrier: a cancel before its try recorded the barrier. */
export type TccEffect = 'applied' | 'noop' | 'barrier';
/** What every participant operation returns besides its answer: its effect, which measure counts. */
export interface TccEffected {
  effect: TccEffect;
}

/**
 * The TCC routes log at warn: the saga worker calls them four times per order, every call is
 * already counted here and in the HTTP duration histogram by route and status, and a refusal is an
 * answer the worker acts on. Two access-log lines per call cost several percent of a participant's CPU;
 * server errors are still logged, with their request id.
 */
export const TCC_ROUTE_LOG_LEVEL = 'warn';

const PHASES: ReadonlySet<TccOperation> = new Set<TccOperation>(['try', 'confirm', 'cancel']);
const COMPLETION_BY_PHASE: Partial<Record<TccOperation, 'confirmed' | 'cancelled'>> = { confirm: 'confirmed', cancel: 'cancelled' };

export interface TccMetricsOptions {
  participant: TccParticipant;
  /** Counts the participant's holds in RESERVED status; read on every scrape, so the gauge is never stale. */
  countActiveReservations: () => Promise<number>;
}

export function createTccMetrics(registry: Registry, { participant, countActiveReservations }: TccMetricsOptions) {
  const operations = new Counter({
    name: 'oms_tcc_operations_total',
    help: 'TCC participant operations by participant, operation and outcome (applied, noop, barrier, the refusal code, or error)',
    labelNames: ['participant', 'operation', 'outcome'] as const,
    registers: [registry],
  });
  const started = new Counter({
    name: 'oms_tcc_started_total',
    help: 'TCC transactions started at a participant: tries that took a new hold',
    labelNames: ['participant'] as const,
    registers: [registry],
  });
  const completed = new Counter({
    name: 'oms_tcc_completed_total',
    help: 'TCC holds ended at a participant, by outcome (confirmed, cancelled, expired)',
    labelNames: ['participant', 'outcome'] as const,
    registers: [registry],
  });
  const timeouts = new Counter({
    name: 'oms_tcc_timeout_total',
    help: 'TCC holds that nobody confirmed or cancelled before RESERVATION_TTL_SECONDS (released by the sweeper)',
    labelNames: ['participant'] as const,
    registers: [registry],
  });
  const phaseDuration = new Histogram({
    name: 'oms_tcc_phase_duration_seconds',
    help: 'Time a participant took for one try, confirm or cancel (database transaction included)',
    labelNames: ['participant', 'phase'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  new Gauge({
    name: 'oms_tcc_active_reservations',
    help: 'TCC holds currently RESERVED (tried, neither confirmed, cancelled nor expired)',
    labelNames: ['participant'] as const,
    registers: [registry],
    async collect() {
      // A scrape while the database is down reports no value rather than a stale one.
      this.reset();
      this.set({ participant }, await countActiveReservations().catch(() => Number.NaN));
    },
  });

  return {
    /** Runs one participant operation and records the effect it reports (or its error); the result passes through. */
    async measure<T extends TccEffected>(operation: TccOperation, run: () => Promise<T>): Promise<T> {
      const endTimer = PHASES.has(operation) ? phaseDuration.startTimer({ participant, phase: operation }) : undefined;
      try {
        const result = await run();
        const { effect } = result;
        operations.inc({ participant, operation, outcome: effect });
        if (effect === 'applied') {
          if (operation === 'try') started.inc({ participant });
          const completion = COMPLETION_BY_PHASE[operation];
          if (completion) completed.inc({ participant, outcome: completion });
        }
        return result;
      } catch (error) {
        // A refusal is labelled by its stable error code (a bounded set); anything else is a fault.
        operations.inc({ participant, operation, outcome: error instanceof ApiError && error.statusCode < 500 ? error.code : 'error' });
        throw error;
      } finally {
        endTimer?.();
      }
    },

    /** The sweeper released `count` holds whose TTL passed. */
    recordExpired(count: number): void {
      if (count <= 0) return;
      operations.inc({ participant, operation: 'expire', outcome: 'applied' }, count);
      timeouts.inc({ participant }, count);
      completed.inc({ participant, outcome: 'expired' }, count);
    },

    recordExpiryError(): void {
      operations.inc({ participant, operation: 'expire', outcome: 'error' });
    },
  };
}

export type TccMetrics = ReturnType<typeof createTccMetrics>;
