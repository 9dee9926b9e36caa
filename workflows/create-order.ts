/**
 * createOrder: the order's saga. The order service has already written the order (PENDING) and
 * ORDER_CREATED; this workflow validates the customer, runs tccPayment as a child workflow (stock
 * and money), and marks the order PAID. On any failure the compensations run in reverse and the
 * order ends FAILED with the reason, but only once every compensation has completed: an undo that
 * keeps failing past its retry horizon leaves the order COMPENSATION_FAILED ("needs attention", it
 * may still hold stock or money) and the saga open, waiting for an operator's retry.
 *
 * Cancellation (by cancelOrder, see cancel-order.ts) is Temporal cancellation: it reaches the
 * tccPayment child, both compensate, and the order stays CANCELLING for cancelOrder to finish.
 */
import { ApplicationFailure, CancellationScope, executeChild, isCancellation, patched, setHandler, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import {
  FAILURE_TYPES,
  getSagaProgressQuery,
  SEARCH_ATTRIBUTES,
  tccPaymentWorkflowId,
  WORKFLOW_PATCHES,
  type CreateOrderInput,
  type CreateOrderResult,
} from './order-contract';
import {
  Compensations,
  describeFailure,
  failureMessage,
  failureType,
  newSagaProgress,
  publishSagaState,
  runStep,
  sagaActivities,
  sagaShape,
  sagaTimeouts,
} from './saga';
import { tccPayment } from './tcc-payment';

export async function createOrder(input: CreateOrderInput): Promise<CreateOrderResult> {
  const progress = newSagaProgress();
  setHandler(getSagaProgressQuery, () => progress);
  const shape = sagaShape();
  const saga = new Compensations(progress);
  const { orderId } = input;

  const searchAttributes = [
    { key: SEARCH_ATTRIBUTES.orderId, value: orderId },
    { key: SEARCH_ATTRIBUTES.customerId, value: input.customerId },
    { key: SEARCH_ATTRIBUTES.sagaState, value: 'RUNNING' },
  ];
  // The order service starts the saga with these set; the `local` shape only fills in what is missing.
  const current = workflowInfo().typedSearchAttributes;
  const missing = shape === 'local' ? searchAttributes.filter(({ key, value }) => current.get(key) !== value) : searchAttributes;
  if (missing.length > 0) upsertSearchAttributes(missing);

  const timeouts = await sagaTimeouts(shape, input.timeouts);
  const { forward, undo } = sagaActivities(timeouts, shape);
  try {
    await runStep(progress, 'validateCustomer', () => forward.validateCustomer(input.customerId));

    // The child compensates its own failures; these undo a child that completed when a later step
    // fails (or the saga is cancelled), and give a failed child's compensation a second chance.
    // Both are safe whatever the child reached: release-or-restock, void-or-refund, by order id.
    saga.add('releaseOrRestockStock', () => undo.releaseOrRestockStock(orderId));
    saga.add('voidOrRefundPayment', () => undo.voidOrRefundPayment({ orderId, reason: 'order saga compensated' }));
    const payment = await runStep(progress, 'tccPayment', () =>
      executeChild(tccPayment, {
        workflowId: tccPaymentWorkflowId(orderId),
        args: [
          {
            orderId,
            customerId: input.customerId,
            items: input.items.map(({ productId, quantity }) => ({ productId, quantity })),
            totalMinor: input.totalMinor,
            currency: input.currency,
            paymentMethod: input.paymentMethod,
            confirmation: input.confirmation,
            holdTtlSeconds: input.holdTtlSeconds,
            timeouts,
            ...(shape === 'local' ? { shape } : {}),
          },
        ],
        typedSearchAttributes: searchAttributes,
      }),
    );

    await runStep(progress, 'markOrderPaid', () =>
      forward.markOrderPaid({ orderId, ...payment }).then((paid) => {
        if (!paid.applied) {
          // Only cancelOrder moves an order out of checkout behind our back (to CANCELLING).
          throw ApplicationFailure.nonRetryable(`order ${orderId} is ${paid.status}, not in checkout`, FAILURE_TYPES.orderCancelled);
        }
      }),
    );
    publishSagaState(progress, 'COMPLETED', shape);
    return { orderId, status: 'PAID', ...payment };
  } catch (error) {
    const reason = describeFailure(error);
    progress.failureReason = reason;
    publishSagaState(progress, 'COMPENSATING', shape);
    let compensated: boolean;
    if (!isCancellation(error) && patched(WORKFLOW_PATCHES.compensationFailedState)) {
      // Never FAILED while something may still be held: stop and wait for an operator instead.
      await saga.compensateUntilComplete(() => undo.markOrderCompensationFailed({ orderId, reason }));
      compensated = true;
    } else {
      // A cancelled saga (cancelOrder undoes the rest), or a saga started before the patch.
      compensated = await saga.compensate();
    }
    // FAILED only after stock and money are back. A no-op when cancelOrder owns the order (CANCELLING).
    try {
      await CancellationScope.nonCancellable(() => runStep(progress, 'markOrderFailed', () => undo.markOrderFailed({ orderId, reason })));
    } catch (markError) {
      compensated = false;
      progress.compensations.push({ step: 'markOrderFailed', outcome: 'FAILED', error: describeFailure(markError) });
    }
    publishSagaState(progress, compensated ? 'COMPENSATED' : 'FAILED', shape);
    if (isCancellation(error)) throw error;
    throw ApplicationFailure.create({ message: failureMessage(error), type: failureType(error) ?? 'CreateOrderFailed', nonRetryable: true, cause: error as Error });
  }
}
