/**
 * cancelOrder: PENDING / AWAITING_CONFIRMATION / PAID -> CANCELLING -> CANCELLED, with the stock
 * back (released, or restocked when it was sold) and the money back (hold voided, or refunded
 * when it was captured).
 *
 * An order whose createOrder saga is still running: we first move the order to CANCELLING, which
 * createOrder's own transitions (PAID, FAILED) can no longer overwrite; then we cancel createOrder
 * through Temporal and wait for it to close (settleCreateOrder). Cancellation reaches its tccPayment
 * child wherever it is (trying, holding for a manual confirm, confirming), and both compensate.
 * Only then do we undo stock and money ourselves. Those undos are idempotent by order id, so they
 * are a no-op after createOrder's compensations and complete the job when it had reached PAID. We
 * chose this over signalling createOrder: cancellation needs no extra protocol, works the same in
 * every step, and a createOrder that never started is covered by the participants' barriers (our
 * cancels come first and refuse its late tries).
 */
import { ApplicationFailure, patched, proxyActivities, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import { getSagaProgressQuery, SEARCH_ATTRIBUTES, WORKFLOW_PATCHES, type CancelOrderInput, type CancelOrderResult, type SagaState } from './order-contract';
import {
  describeFailure,
  failureMessage,
  failureType,
  newSagaProgress,
  publishSagaState,
  runStep,
  sagaActivities,
  sagaShape,
  sagaTimeouts,
  type SagaActivities,
} from './saga';

export async function cancelOrder(input: CancelOrderInput): Promise<CancelOrderResult> {
  const progress = newSagaProgress();
  const { orderId, reason } = input;
  setHandler(getSagaProgressQuery, () => progress);
  const shape = sagaShape();
  upsertSearchAttributes([
    { key: SEARCH_ATTRIBUTES.orderId, value: orderId },
    { key: SEARCH_ATTRIBUTES.sagaState, value: 'RUNNING' },
  ]);

  const timeouts = await sagaTimeouts(shape, input.timeouts);
  const { forward, undo } = sagaActivities(timeouts, shape);
  // Waiting for createOrder lasts as long as its compensations; heartbeats show the wait is alive.
  // Always a normal activity: it can last minutes and must be heartbeated.
  const { settleCreateOrder } = proxyActivities<SagaActivities>({
    startToCloseTimeout: '1 hour',
    heartbeatTimeout: Math.max(5_000, timeouts.activityStartToCloseMs),
    retry: { initialInterval: timeouts.initialRetryIntervalMs, maximumInterval: timeouts.maximumRetryIntervalMs, maximumAttempts: timeouts.compensationMaximumAttempts },
  });

  let requested = false;
  try {
    const { previousStatus } = await runStep(progress, 'requestCancellation', () => forward.requestOrderCancellation({ orderId, reason }));
    requested = true;
    await runStep(progress, 'settleCreateOrder', () => settleCreateOrder(orderId));
    // Cancelling has begun and cannot be undone: from here on steps retry as long as compensations do.
    const stock = await runStep(progress, 'releaseOrRestockStock', () => undo.releaseOrRestockStock(orderId));
    const payment = await runStep(progress, 'voidOrRefundPayment', () => undo.voidOrRefundPayment({ orderId, reason: `order cancelled: ${reason}` }));
    await runStep(progress, 'markOrderCancelled', () => undo.markOrderCancelled({ orderId, reason, refundId: payment.refundId }));
    publishSagaState(progress, 'COMPLETED', shape);
    return { orderId, status: 'CANCELLED', cancelledFrom: previousStatus, stock, refundId: payment.refundId };
  } catch (error) {
    progress.failureReason = describeFailure(error);
    // Refused before anything changed (not cancellable): nothing to undo. Failed halfway (an undo
    // failed past its retry horizon): the order stays CANCELLING and needs attention; a new cancel
    // (POST /orders/:id/cancel) starts a new run that picks up where this one stopped.
    publishSagaState(progress, requested ? 'COMPENSATION_FAILED' : refusedState(), shape);
    throw ApplicationFailure.create({
      message: failureMessage(error),
      type: failureType(error) ?? 'CancelOrderFailed',
      nonRetryable: true,
      cause: error as Error,
    });
  }
}

/** Runs recorded before the patch said COMPENSATED for a refusal; their replays must say it again. */
function refusedState(): SagaState {
  return patched(WORKFLOW_PATCHES.refusedCancelState) ? 'REFUSED' : 'COMPENSATED';
}
