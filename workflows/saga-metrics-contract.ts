/**
 * What the saga metrics interceptor (saga-metrics-interceptor.ts, inside the workflow sandbox) tells
 * the worker (workers/saga-metrics.ts, which owns the Prometheus counters). The workflow side only
 * calls these sinks; Temporal runs them on the worker's main thread, and not again when a history
 * is replayed, so each saga is counted once however often its history is replayed.
 */
import type { Sink, Sinks } from '@temporalio/workflow';
import type { SagaState } from './order-contract';

/** How a saga ended, the `outcome` label of oms_saga_completed_total and oms_saga_duration_seconds. */
export type SagaOutcome = 'completed' | 'compensated' | 'compensation_failed' | 'failed' | 'refused';

/**
 * The outcome of a saga that closed in `state`. A saga closes in COMPENSATION_FAILED (cancelOrder)
 * or FAILED (tccPayment, whose parent undoes the same again; createOrder when marking the order
 * failed did not work) only after an undo step gave up: stock or money may still be held, which is
 * what `compensation_failed` alerts on. (createOrder waits open in COMPENSATION_FAILED: the
 * oms_saga_active{state} gauge shows those.) Keyed by every SagaState, so a new state cannot be
 * added without deciding its outcome here.
 */
export const SAGA_OUTCOME_BY_STATE: Record<SagaState, SagaOutcome> = {
  RUNNING: 'failed',
  COMPENSATING: 'failed',
  COMPLETED: 'completed',
  COMPENSATED: 'compensated',
  COMPENSATION_FAILED: 'compensation_failed',
  FAILED: 'compensation_failed',
  REFUSED: 'refused',
};

export interface SagaMetricsSink extends Sink {
  /** The saga's first workflow task ran. */
  started(): void;
  /** The saga closed (completed, or failed after its compensations) with this outcome. */
  closed(outcome: SagaOutcome): void;
}

export interface SagaMetricsSinks extends Sinks {
  sagaMetrics: SagaMetricsSink;
}
