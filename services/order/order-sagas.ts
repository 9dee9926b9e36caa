/**
 * The order service's side of the order sagas on Temporal: start createOrder and cancelOrder under
 * ids derived from the order id, send the manual-checkout confirm, and read a saga's live state.
 * Workflows are started by name with their contract's input type; no workflow body is imported.
 */
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowIdReusePolicy,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
  type WorkflowExecutionDescription,
} from '@temporalio/client';
import type { cancelOrder } from '../../workflows/cancel-order';
import type { createOrder } from '../../workflows/create-order';
import {
  cancelOrderWorkflowId,
  CORRELATION_ID_MEMO,
  confirmCheckoutUpdate,
  createOrderWorkflowId,
  getSagaProgressQuery,
  SAGA_STATES,
  SEARCH_ATTRIBUTES,
  tccPaymentWorkflowId,
  WORKFLOW_TYPES,
  type CancelOrderInput,
  type CreateOrderInput,
  type SagaProgress,
  type SagaState,
} from '../../workflows/order-contract';
import type { Config } from '../../lib/config';
import { currentCorrelationId } from '../../lib/correlation';
import { ApiError } from '../shared/errors';
import { ORDER_ERROR_CODES } from './schemas';

const { orderId: ORDER_ID_KEY, customerId: CUSTOMER_ID_KEY, sagaState: SAGA_STATE_KEY } = SEARCH_ATTRIBUTES;

export interface SagaSnapshot {
  description: WorkflowExecutionDescription;
  sagaState: SagaState | null;
  /** Undefined when the workflow did not answer the query (no worker polling its task queue). */
  progress: SagaProgress | undefined;
  webUiUrl: string;
}

export type ConfirmOutcome =
  | { kind: 'accepted' }
  | { kind: 'refused'; reason: string }
  | { kind: 'saga-not-found' };

export interface OrderSagas {
  /** Starts the order's createOrder saga; true if this call started it, false if it already existed (a duplicate start is not an error). */
  startCreateOrder(input: CreateOrderInput): Promise<boolean>;
  /** Starts the order's cancelOrder saga; an already running one counts as started. */
  startCancelOrder(input: CancelOrderInput & { customerId: string }): Promise<string>;
  /** Manual checkout: sends the confirm update to the order's tccPayment saga (the child holding the reservations). */
  confirmCheckout(orderId: string): Promise<ConfirmOutcome>;
  /** Describe plus progress query; undefined when the workflow does not exist. */
  snapshot(workflowId: string): Promise<SagaSnapshot | undefined>;
}

export interface OrderSagasOptions {
  client: Client;
  config: Pick<Config, 'TEMPORAL_TASK_QUEUE' | 'TEMPORAL_UI_URL'>;
  /** How long a Temporal call (start, describe, query, update) may take before the request gives up. */
  callTimeoutMs?: number;
  /**
   * Eager workflow start for createOrder: the server hands the first workflow task straight back
   * to a worker in this process, saving a round trip through the task queue. Only with a client on
   * the NativeConnection a saga worker of the same task queue polls with (the worker process).
   */
  requestEagerStart?: boolean;
}

/** Temporal not answering (down, overloaded, no worker for an update) is ours to report, as 503; its error (hosts, ports) goes to the log only. */
function temporalUnavailable(error: unknown): ApiError {
  return new ApiError(503, ORDER_ERROR_CODES.dependencyUnavailable, 'Temporal is unavailable; retry later', { dependency: 'temporal' }, { cause: error });
}

/** The saga carries the correlation id of the request that asked for it (workflows/correlation-interceptor.ts). */
function correlationMemo(): Record<string, string> | undefined {
  const correlationId = currentCorrelationId();
  return correlationId ? { [CORRELATION_ID_MEMO]: correlationId } : undefined;
}

function isSagaState(value: unknown): value is SagaState {
  return typeof value === 'string' && (SAGA_STATES as readonly string[]).includes(value);
}

export function createOrderSagas({ client, config, callTimeoutMs = 5_000, requestEagerStart = false }: OrderSagasOptions): OrderSagas {
  const namespace = client.options.namespace;
  const withTimeout = <R>(fn: () => Promise<R>) => client.withDeadline(Date.now() + callTimeoutMs, fn);

  return {
    async startCreateOrder(input) {
      try {
        // Bounded: with Temporal down the start intent stays and the saga starter tries again after a backoff.
        await withTimeout(() => client.workflow.start<typeof createOrder>(WORKFLOW_TYPES.createOrder, {
          workflowId: createOrderWorkflowId(input.orderId),
          taskQueue: config.TEMPORAL_TASK_QUEUE,
          // No timeouts: the saga takes the worker's (activities/saga-policy.ts).
          args: [input],
          // One saga per order, ever: a second start (a retried or repeated intent) is refused by the server.
          workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
          requestEagerStart,
          memo: correlationMemo(),
          typedSearchAttributes: [
            { key: ORDER_ID_KEY, value: input.orderId },
            { key: CUSTOMER_ID_KEY, value: input.customerId },
            { key: SAGA_STATE_KEY, value: 'RUNNING' },
          ],
        }));
        return true;
      } catch (error) {
        if (error instanceof WorkflowExecutionAlreadyStartedError) return false;
        throw error;
      }
    },

    async startCancelOrder(input) {
      const workflowId = cancelOrderWorkflowId(input.orderId);
      try {
        await withTimeout(() => client.workflow.start<typeof cancelOrder>(WORKFLOW_TYPES.cancelOrder, {
          workflowId,
          taskQueue: config.TEMPORAL_TASK_QUEUE,
          args: [{ orderId: input.orderId, reason: input.reason, ...(input.timeouts ? { timeouts: input.timeouts } : {}) }],
          // A cancel that failed (e.g. a participant down past its retries) may be asked for again; a running or completed one may not.
          workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
          memo: correlationMemo(),
          typedSearchAttributes: [
            { key: ORDER_ID_KEY, value: input.orderId },
            { key: CUSTOMER_ID_KEY, value: input.customerId },
            { key: SAGA_STATE_KEY, value: 'RUNNING' },
          ],
        }));
      } catch (error) {
        if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw temporalUnavailable(error);
      }
      return workflowId;
    },

    async confirmCheckout(orderId) {
      const handle = client.workflow.getHandle(tccPaymentWorkflowId(orderId));
      try {
        const result = await withTimeout(() => handle.executeUpdate(confirmCheckoutUpdate));
        return result.accepted ? { kind: 'accepted' } : { kind: 'refused', reason: 'the saga is no longer waiting for a confirmation' };
      } catch (error) {
        if (error instanceof WorkflowNotFoundError) return { kind: 'saga-not-found' };
        // The update's validator or handler refused it: a decision of the saga, not a fault.
        if (error instanceof WorkflowUpdateFailedError) return { kind: 'refused', reason: error.cause?.message ?? error.message };
        throw temporalUnavailable(error);
      }
    },

    async snapshot(workflowId) {
      let description: WorkflowExecutionDescription;
      try {
        description = await withTimeout(() => client.workflow.getHandle(workflowId).describe());
      } catch (error) {
        if (error instanceof WorkflowNotFoundError) return undefined;
        throw temporalUnavailable(error);
      }
      let progress: SagaProgress | undefined;
      try {
        // Closed workflows answer queries too, as long as a worker for their task queue runs.
        progress = await withTimeout(() => client.workflow.getHandle(workflowId, description.runId).query(getSagaProgressQuery));
      } catch {
        progress = undefined;
      }
      const fromAttributes = description.typedSearchAttributes.get(SAGA_STATE_KEY);
      const webUiUrl = `${config.TEMPORAL_UI_URL.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}/${description.runId}/history`;
      return { description, sagaState: progress?.state ?? (isSagaState(fromAttributes) ? fromAttributes : null), progress, webUiUrl };
    },
  };
}
