/**
 * tccPayment: the order's TCC transaction over two participants, stock (product service) and
 * money (payment service). The order id is the transaction id; both participants key their barrier
 * rows by it, which is what makes every call below idempotent and every cancel safe.
 *
 * Try: both branches in parallel, each branch's undo registered BEFORE its try. We wait for both
 * tries to settle before deciding, so a slow try is never left holding after we gave up on the
 * other (a coordinator that decides on the first failure leaks the other branch's hold).
 *
 * Confirm: stock first, then payment. Money moves last, so it is never captured for stock that
 * could not be confirmed: an expired stock hold fails before any capture and we only release holds.
 * If the capture then fails for good (its hold expired), the stock undo restocks the confirmed
 * units. Should anything still go wrong after a capture (cancellation, a worker lost mid-step), the
 * payment undo refunds by order id: no money stays captured for an order without its stock.
 *
 * Manual checkout: the holds wait for confirmCheckoutUpdate / cancelCheckoutUpdate on a durable
 * timer (the hold TTL); when it fires first, everything is cancelled (CheckoutExpired). The hold TTL
 * (the order service's CHECKOUT_HOLD_TTL_SECONDS) and the reservations' lifetime (each participant's
 * RESERVATION_TTL_SECONDS) are set in different processes, so the timer is cut to end before the
 * earliest expiresAt the tries returned: a reservation that expires first can never be confirmed late.
 */
import { ApplicationFailure, condition, isCancellation, patched, setHandler } from '@temporalio/workflow';
import {
  cancelCheckoutUpdate,
  confirmCheckoutUpdate,
  FAILURE_TYPES,
  getSagaProgressQuery,
  RESERVATION_CONFIRM_MARGIN_MS,
  WORKFLOW_PATCHES,
  type TccPaymentInput,
  type TccPaymentResult,
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
  sagaTimeouts,
} from './saga';

type CheckoutDecision = { kind: 'confirm' } | { kind: 'cancel'; reason: string };

export async function tccPayment(input: TccPaymentInput): Promise<TccPaymentResult> {
  const progress = newSagaProgress();
  const saga = new Compensations(progress);
  let decision: CheckoutDecision | null = null;
  let settled = false;

  setHandler(getSagaProgressQuery, () => progress);
  // A decision may arrive while the tries are still running; it is applied once they are done.
  // After the checkout was decided (or in auto mode) the answer is accepted: false, nothing changes.
  const decidable = () => input.confirmation === 'manual' && decision === null && !settled;
  setHandler(confirmCheckoutUpdate, () => {
    if (!decidable()) return { accepted: false };
    decision = { kind: 'confirm' };
    return { accepted: true };
  });
  setHandler(cancelCheckoutUpdate, ({ reason }) => {
    if (!decidable()) return { accepted: false };
    decision = { kind: 'cancel', reason };
    return { accepted: true };
  });

  const { orderId } = input;
  // The `local` shape runs a whole automatic checkout (both tries, confirm, capture) in one workflow task.
  const shape = input.shape ?? 'remote';
  // Bounded undo: when it gives up, createOrder (the parent) undoes the same things under its horizon.
  const { forward, undoBounded: undo } = sagaActivities(await sagaTimeouts(shape, input.timeouts), shape);
  try {
    saga.add('releaseOrRestockStock', () => undo.releaseOrRestockStock(orderId));
    saga.add('voidOrRefundPayment', () => undo.voidOrRefundPayment({ orderId, reason: 'order payment compensated' }));
    const reservationExpiries: string[] = [];
    const hold = await runStep(progress, 'tryStockAndPayment', () =>
      Promise.allSettled([
        forward.reserveStock({ orderId, items: input.items }),
        forward.reservePayment({ orderId, customerId: input.customerId, totalMinor: input.totalMinor, currency: input.currency }),
      ]).then(([stock, payment]) => {
        if (stock.status === 'rejected') throw stock.reason;
        if (payment.status === 'rejected') throw payment.reason;
        reservationExpiries.push(...stock.value.map((line) => line.expiresAt), payment.value.expiresAt);
        return payment.value;
      }),
    );

    if (input.confirmation === 'manual') {
      await runStep(progress, 'awaitCheckoutConfirmation', async () => {
        const now = new Date().getTime();
        let holdMs = input.holdTtlSeconds * 1000;
        if (patched(WORKFLOW_PATCHES.holdWithinReservations)) {
          const earliestExpiry = Math.min(...reservationExpiries.map((expiresAt) => Date.parse(expiresAt)));
          // At least 1 ms: condition() with 0 would mean "no timeout" in histories from before SDK 1.5.
          holdMs = Math.max(1, Math.min(holdMs, earliestExpiry - now - RESERVATION_CONFIRM_MARGIN_MS));
        }
        const holdExpiresAt = new Date(now + holdMs).toISOString();
        await forward.markAwaitingConfirmation({ orderId, holdExpiresAt });
        if (!(await condition(() => decision !== null, holdMs))) {
          throw ApplicationFailure.nonRetryable(`checkout not confirmed by ${holdExpiresAt}`, FAILURE_TYPES.checkoutExpired);
        }
        if (decision?.kind === 'cancel') throw ApplicationFailure.nonRetryable(`checkout cancelled: ${decision.reason}`, FAILURE_TYPES.checkoutCancelled);
      });
    }
    settled = true;

    await runStep(progress, 'confirmStock', () => forward.confirmStock(orderId));
    const captured = await runStep(progress, 'capturePayment', () =>
      forward.capturePayment({ reservationId: hold.reservationId, paymentMethod: input.paymentMethod }),
    );
    publishSagaState(progress, 'COMPLETED', shape);
    return { paymentId: captured.paymentId, paymentReservationId: hold.reservationId, transactionId: captured.transactionId };
  } catch (error) {
    settled = true;
    progress.failureReason = describeFailure(error);
    publishSagaState(progress, 'COMPENSATING', shape);
    const compensated = await saga.compensate();
    publishSagaState(progress, compensated ? 'COMPENSATED' : 'FAILED', shape);
    if (isCancellation(error)) throw error;
    // The parent sees the decline's type (InsufficientStock, ReservationExpired...) at the top.
    throw ApplicationFailure.create({ message: failureMessage(error), type: failureType(error) ?? 'TccPaymentFailed', nonRetryable: true, cause: error as Error });
  }
}
