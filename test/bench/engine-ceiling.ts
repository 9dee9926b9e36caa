/**
 * The engine ceiling: what the same Temporal server and the same worker settings do for the very
 * same saga shape (createOrder + its tccPayment child, the real workflow code) when every activity
 * is a no-op. The bench runs it in the same run as the real sagas, so "real / ceiling" says how much
 * of the engine's capacity the sagas use, whatever the machine's load at the time.
 *
 * The ceiling worker runs in the bench process on a task queue of its own (bench-engine.ts); the
 * stack's worker is idle meanwhile.
 */
import { randomUUID } from 'node:crypto';
import { WorkflowIdReusePolicy } from '@temporalio/client';
import { Registry } from 'prom-client';
import { createSagaPolicyActivities } from '../../activities/saga-policy';
import type { Config } from '../../lib/config';
import { createSagaMetrics } from '../../workers/saga-metrics';
import { sagaWorkerTuning } from '../../workers/saga-worker';
import { baseWorkerOptions } from '../../workers/worker-options';
import { createOrderWorkflowId, SEARCH_ATTRIBUTES, WORKFLOW_TYPES, type CreateOrderInput } from '../../workflows/order-contract';
import type { SagaActivities } from '../../workflows/saga';
import { startBenchEngine } from './bench-engine';

/** Every saga activity, answering at once with what the happy path expects. */
function noopSagaActivities(): SagaActivities {
  const applied = { applied: true, status: 'PAID' as const };
  return {
    validateCustomer: async () => undefined,
    reserveStock: async ({ items }) => items.map((line) => ({ ...line, reservationId: randomUUID(), expiresAt: new Date(Date.now() + 600_000).toISOString() })),
    confirmStock: async () => undefined,
    releaseOrRestockStock: async () => 'NOTHING_HELD' as const,
    reservePayment: async () => ({ reservationId: randomUUID(), expiresAt: new Date(Date.now() + 600_000).toISOString() }),
    capturePayment: async () => ({ paymentId: randomUUID(), transactionId: randomUUID() }),
    voidOrRefundPayment: async () => ({ hold: 'none' as const, refundId: null }),
    markAwaitingConfirmation: async () => ({ applied: true, status: 'AWAITING_CONFIRMATION' as const }),
    markOrderPaid: async () => applied,
    markOrderFailed: async () => ({ applied: true, status: 'FAILED' as const }),
    markOrderCompensationFailed: async () => ({ applied: true, status: 'COMPENSATION_FAILED' as const }),
    requestOrderCancellation: async () => ({ previousStatus: 'PENDING' as const }),
    markOrderCancelled: async () => ({ applied: true, status: 'CANCELLED' as const }),
    settleCreateOrder: async () => undefined,
  };
}

export interface EngineCeiling {
  /** Starts one createOrder on the ceiling queue, the way the order service starts it, and waits for its result. */
  runOneSaga: () => Promise<void>;
  close: () => Promise<void>;
}

export async function startEngineCeiling(config: Config): Promise<EngineCeiling> {
  const engine = await startBenchEngine(config, 'ceiling', async ({ connection, taskQueue, identity, client }) => ({
    ...(await baseWorkerOptions({ connection, config, identity, taskQueue })),
    ...sagaWorkerTuning(config),
    activities: { ...noopSagaActivities(), ...createSagaPolicyActivities(config) },
    sinks: createSagaMetrics(new Registry(), client).sinks,
  }));
  return {
    async runOneSaga() {
      const orderId = randomUUID();
      const input: CreateOrderInput = {
        orderId,
        customerId: randomUUID(),
        items: [{ productId: randomUUID(), quantity: 1, unitPriceMinor: 100 }],
        totalMinor: 100,
        currency: 'USD',
        paymentMethod: 'ACCOUNT_BALANCE',
        confirmation: 'auto',
        holdTtlSeconds: 600,
      };
      await engine.run(WORKFLOW_TYPES.createOrder, {
        workflowId: createOrderWorkflowId(orderId),
        args: [input],
        workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
        typedSearchAttributes: [
          { key: SEARCH_ATTRIBUTES.orderId, value: orderId },
          { key: SEARCH_ATTRIBUTES.customerId, value: input.customerId },
          { key: SEARCH_ATTRIBUTES.sagaState, value: 'RUNNING' },
        ],
      });
    },
    close: engine.close,
  };
}
