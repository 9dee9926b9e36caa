/**
 * The saga's activity timeouts and retry bounds, from the worker's own configuration: the worker
 * knows how long its HTTP calls may take and how long an undo may keep retrying. A saga reads them
 * once, as its first step (a local activity, recorded in its history), and keeps them for its whole
 * life, so a saga retried hours later on another worker runs with the bounds it started with.
 */
import type { Config } from '../lib/config';
import { sagaTimeoutsFor, type SagaTimeouts } from '../workflows/order-contract';

export function createSagaPolicyActivities(config: Pick<Config, 'HTTP_CLIENT_TIMEOUT_MS' | 'SAGA_COMPENSATION_RETRY_HORIZON_SECONDS'>) {
  const timeouts = Object.freeze(sagaTimeoutsFor(config.HTTP_CLIENT_TIMEOUT_MS, config.SAGA_COMPENSATION_RETRY_HORIZON_SECONDS * 1000));
  return {
    /** This worker's saga timeouts (see SagaTimeouts). */
    async sagaTimeouts(): Promise<SagaTimeouts> {
      return timeouts;
    },
  };
}

export type SagaPolicyActivities = ReturnType<typeof createSagaPolicyActivities>;
