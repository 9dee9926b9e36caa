/**
 * The engine ceiling: what the same Temporal server and the same worker settings do for the very
 * same saga shape (createOrder + its tccPayment child, the real workflow code) when every activity
 * is a no-op. The bench runs it in the same run as the real sagas, so "real / ceiling" says how much
 * of the engine's capacity the sagas use, whatever the machine's load at the time.
 *
 * The ceiling worker runs in the bench process on a task queue of its own, so nothing else competes
 * for its tasks; the stack's worker is idle meanwhile.
 */
import { randomUUID } from 'node:crypto';
import { Client, WorkflowIdReusePolicy } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { Registry } from 'prom-client';
import { createSagaPolicyActivities } from '../../activities/saga-policy';
import type { Config } from '../../lib/config';
import { temporalConnectionOptions } from '../../lib/temporal-connection';
import { createSagaMetrics } from '../../workers/saga-metrics';
import { sagaWorkerTuning } from '../../workers/saga-worker';
import { baseWorkerOptions } from '../../workers/worker-options';
import type { createOrder } from '../../workflows/create-order';
import { createOrderWorkflowId, SEARCH_ATTRIBUTES, WORKFLOW_TYPES, type CreateOrderInput } from '../../workflows/order-contract';
import type { SagaActivities } from '../../workflows/saga';

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
  const taskQueue = `oms-bench-ceiling-${randomUUID().slice(0, 8)}`;
  const connection = await NativeConnection.connect(temporalConnectionOptions(config));
  const client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  const worker = await Worker.create({
    ...(await baseWorkerOptions({ connection, config, identity: `oms-bench-ceiling@${process.pid}`, taskQueue })),
    ...sagaWorkerTuning(config),
    activities: { ...noopSagaActivities(), ...createSagaPolicyActivities(config) },
    sinks: createSagaMetrics(new Registry(), client).sinks,
  });
  const running = worker.run();
  // Sagas started and not yet finished: close() terminates them, so a run that stops early (a
  // failure, Ctrl-C) leaves no saga open on a queue that no worker will ever poll again.
  const unfinished = new Set<string>();

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
      unfinished.add(createOrderWorkflowId(orderId));
      const handle = await client.workflow.start<typeof createOrder>(WORKFLOW_TYPES.createOrder, {
        workflowId: createOrderWorkflowId(orderId),
        taskQueue,
        args: [input],
        workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
        // As the saga starter asks (workers/saga-starter.ts): the worker shares this connection.
        requestEagerStart: true,
        typedSearchAttributes: [
          { key: SEARCH_ATTRIBUTES.orderId, value: orderId },
          { key: SEARCH_ATTRIBUTES.customerId, value: input.customerId },
          { key: SEARCH_ATTRIBUTES.sagaState, value: 'RUNNING' },
        ],
      });
      await handle.result();
      unfinished.delete(handle.workflowId);
    },
    async close() {
      // Terminating createOrder terminates its tccPayment child too (the default parent close policy).
      await Promise.allSettled([...unfinished].map((workflowId) => client.workflow.getHandle(workflowId).terminate('engine ceiling bench stopped')));
      worker.shutdown();
      await running;
      await connection.close();
    },
  };
}
