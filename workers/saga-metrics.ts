/**
 * The saga metrics, on the worker's registry (WORKER_APP_METRICS_PORT):
 *
 *   oms_saga_started_total{saga_type}                 sagas that started
 *   oms_saga_completed_total{saga_type, outcome}      sagas that closed: completed, compensated,
 *                                                     compensation_failed, failed
 *   oms_saga_duration_seconds{saga_type, outcome}     start to close
 *   oms_saga_active{saga_type, state}                 sagas open now by SagaState (a createOrder waiting
 *                                                     in COMPENSATION_FAILED for an operator is one),
 *                                                     counted from Temporal's visibility
 *
 * Starts and closes come from the workflow interceptor (workflows/saga-metrics-interceptor.ts)
 * through a sink that Temporal does not call during replay, so a saga is counted by the worker
 * that ran it, once. The active gauge asks Temporal on each scrape instead of adding and
 * subtracting in this process, so it stays true across worker restarts and several workers.
 */
import type { Client } from '@temporalio/client';
import type { InjectedSinks } from '@temporalio/worker';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { SAGA_STATES, SEARCH_ATTRIBUTES, WORKFLOW_TYPES } from '../workflows/order-contract';
import type { SagaMetricsSinks } from '../workflows/saga-metrics-contract';

export function createSagaMetrics(registry: Registry, temporal: Client) {
  const started = new Counter({
    name: 'oms_saga_started_total',
    help: 'Sagas started, by saga type (createOrder, tccPayment, cancelOrder)',
    labelNames: ['saga_type'] as const,
    registers: [registry],
  });
  const completed = new Counter({
    name: 'oms_saga_completed_total',
    help: 'Sagas closed, by saga type and outcome (completed, compensated, compensation_failed, failed)',
    labelNames: ['saga_type', 'outcome'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'oms_saga_duration_seconds',
    help: 'Saga run time from start to close, by saga type and outcome',
    labelNames: ['saga_type', 'outcome'] as const,
    // From an automatic checkout (sub-second) to a manual one held for CHECKOUT_HOLD_TTL_SECONDS.
    buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
    registers: [registry],
  });
  const openSagasQuery = `WorkflowType IN (${Object.values(WORKFLOW_TYPES).map((type) => `'${type}'`).join(', ')}) AND ExecutionStatus = 'Running'`;
  new Gauge({
    name: 'oms_saga_active',
    help: 'Sagas open now, by saga type and SagaState, from Temporal visibility',
    labelNames: ['saga_type', 'state'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const open = new Map<string, number>();
      try {
        for await (const workflow of temporal.workflow.list({ query: openSagasQuery })) {
          const key = `${workflow.type}\u0000${String(workflow.typedSearchAttributes.get(SEARCH_ATTRIBUTES.sagaState) ?? 'RUNNING')}`;
          open.set(key, (open.get(key) ?? 0) + 1);
        }
      } catch {
        // Temporal unreachable: no value this scrape rather than a wrong one.
        return;
      }
      // Every type and state, zeros included, so an alert sees the series before the first one.
      for (const type of Object.values(WORKFLOW_TYPES)) {
        for (const state of SAGA_STATES) this.set({ saga_type: type, state }, open.get(`${type}\u0000${state}`) ?? 0);
      }
    },
  });

  const sinks: InjectedSinks<SagaMetricsSinks> = {
    sagaMetrics: {
      started: { fn: (info) => started.inc({ saga_type: info.workflowType }), callDuringReplay: false },
      closed: {
        fn: (info, outcome) => {
          completed.inc({ saga_type: info.workflowType, outcome });
          duration.observe({ saga_type: info.workflowType, outcome }, (Date.now() - info.runStartTime.getTime()) / 1000);
        },
        callDuringReplay: false,
      },
    },
  };
  return { sinks };
}

export type SagaMetrics = ReturnType<typeof createSagaMetrics>;
