/**
 * The order saga's own steps on order_db: customer validation and every order status transition,
 * each written with its outbox event(s) in one transaction. Every transition checks, inside that
 * transaction, that the order is in a state it may leave (a conditional UPDATE, or for a
 * cancellation request the row locked FOR UPDATE and then checked), so an activity retried after
 * its commit changes nothing twice, and a transition that lost a race (the order was cancelled
 * meanwhile) says so instead of overwriting the winner.
 */
import { ApplicationFailure, CancelledFailure, WorkflowNotFoundError } from '@temporalio/common';
import { Context } from '@temporalio/activity';
import { WorkflowFailedError } from '@temporalio/client';
import { sql, type Kysely, type Updateable } from 'kysely';
import type { OrderDatabase, OrdersTable, OrderStatus } from '../db/order/schema';
import { currencyCode, formatMinor } from '../lib/money';
import type { EventPayload, EventType } from '../lib/events';
import { appendOutboxEvent } from '../lib/outbox';
import { createOrderWorkflowId, customerFailureReason, FAILURE_TYPES } from '../workflows/order-contract';

export interface OrderActivitiesDependencies {
  db: Kysely<OrderDatabase>;
}

/** The outcome of a conditional transition: `applied` false means the order was already elsewhere. */
export interface TransitionOutcome {
  applied: boolean;
  status: OrderStatus;
}

export type CancellableStatus = 'PENDING' | 'AWAITING_CONFIRMATION' | 'CONFIRMING' | 'PAID' | 'COMPENSATION_FAILED';
const CANCELLABLE: readonly OrderStatus[] = ['PENDING', 'AWAITING_CONFIRMATION', 'CONFIRMING', 'PAID', 'COMPENSATION_FAILED'];
/** States createOrder may still move an order out of; once CANCELLING, only cancelOrder may. (CONFIRMING is written by the order API when the customer confirms.) */
const IN_CHECKOUT: readonly OrderStatus[] = ['PENDING', 'AWAITING_CONFIRMATION', 'CONFIRMING'];
/** createOrder's failure path: in checkout, or stopped with an undo that failed past its horizon. */
const FAILING: readonly OrderStatus[] = [...IN_CHECKOUT, 'COMPENSATION_FAILED'];

export function createOrderActivities({ db }: OrderActivitiesDependencies) {
  async function currentStatus(orderId: string): Promise<OrderStatus> {
    const row = await db.selectFrom('orders').select('status').where('id', '=', orderId).executeTakeFirst();
    if (!row) throw ApplicationFailure.nonRetryable(`order ${orderId} does not exist`, FAILURE_TYPES.orderNotFound);
    return row.status;
  }

  /**
   * The conditional transition the simple steps share: only from one of `from` to `to`, with its
   * event, in one transaction. `applied: false` (with the status found) when the order was elsewhere.
   */
  async function transition<T extends EventType>(
    orderId: string,
    from: readonly OrderStatus[],
    to: OrderStatus,
    columns: Updateable<OrdersTable>,
    event: { eventType: T; payload: EventPayload<T> },
  ): Promise<TransitionOutcome> {
    return db.transaction().execute(async (trx) => {
      const updated = await trx
        .updateTable('orders')
        .set({ ...columns, status: to, updated_at: sql`now()` })
        .where('id', '=', orderId)
        .where('status', 'in', from)
        .returning('id')
        .executeTakeFirst();
      if (!updated) return { applied: false, status: await currentStatus(orderId) };
      await appendOutboxEvent(trx, { ...event, aggregateId: orderId, correlationId: orderId });
      return { applied: true, status: to };
    });
  }

  /** What the customer may read of the saga's failure reason (see customerFailureReason). */
  async function customerReasonOf(orderId: string, sagaReason: string): Promise<string> {
    const items = await db.selectFrom('order_items').select('product_id').where('order_id', '=', orderId).execute();
    return customerFailureReason(sagaReason, items.map((item) => item.product_id));
  }

  return {
    /** The customer must exist and be ACTIVE; anything else is a decision, not a fault. */
    async validateCustomer(customerId: string): Promise<void> {
      const customer = await db.selectFrom('customers').select('status').where('id', '=', customerId).executeTakeFirst();
      if (!customer) throw ApplicationFailure.nonRetryable(`customer ${customerId} does not exist`, FAILURE_TYPES.customerNotFound, { customerId });
      if (customer.status !== 'ACTIVE') {
        throw ApplicationFailure.nonRetryable(`customer ${customerId} is ${customer.status}`, FAILURE_TYPES.customerInactive, { customerId });
      }
    },

    /** Manual checkout: PENDING -> AWAITING_CONFIRMATION, the reservations now held for the customer. */
    async markAwaitingConfirmation(input: { orderId: string; holdExpiresAt: string }): Promise<TransitionOutcome> {
      return transition(input.orderId, ['PENDING'], 'AWAITING_CONFIRMATION', {}, {
        eventType: 'ORDER_AWAITING_CONFIRMATION',
        payload: { orderId: input.orderId, holdExpiresAt: input.holdExpiresAt },
      });
    },

    /** Stock confirmed and money captured: the order is PAID (ORDER_CONFIRMED, then ORDER_PAID). */
    async markOrderPaid(input: { orderId: string; paymentId: string; paymentReservationId: string; transactionId: string }): Promise<TransitionOutcome> {
      return db.transaction().execute(async (trx) => {
        const updated = await trx
          .updateTable('orders')
          .set({ status: 'PAID', payment_id: input.paymentId, payment_reservation_id: input.paymentReservationId, updated_at: sql`now()` })
          .where('id', '=', input.orderId)
          .where('status', 'in', IN_CHECKOUT)
          .returning(['total_minor', 'currency'])
          .executeTakeFirst();
        if (!updated) {
          const order = await trx.selectFrom('orders').select(['status', 'payment_id']).where('id', '=', input.orderId).executeTakeFirst();
          if (!order) throw ApplicationFailure.nonRetryable(`order ${input.orderId} does not exist`, FAILURE_TYPES.orderNotFound);
          // A retry of an attempt that committed: already PAID with this very payment.
          return { applied: order.status === 'PAID' && order.payment_id === input.paymentId, status: order.status };
        }
        const event = { aggregateId: input.orderId, correlationId: input.orderId };
        await appendOutboxEvent(trx, { ...event, eventType: 'ORDER_CONFIRMED', payload: { orderId: input.orderId } });
        await appendOutboxEvent(trx, {
          ...event,
          eventType: 'ORDER_PAID',
          payload: {
            orderId: input.orderId,
            paymentId: input.paymentId,
            amount: formatMinor(updated.total_minor),
            currency: currencyCode.parse(updated.currency),
            transactionId: input.transactionId,
          },
        });
        return { applied: true, status: 'PAID' };
      });
    },

    /**
     * The saga gave up and every compensation completed: FAILED. The order and its ORDER_FAILED event carry the
     * customer's version of the reason; the saga's own (balances, stock levels, hosts) stays in its
     * history (this activity's input, the failure itself) and its progress query, for operators.
     * A cancelled order stays with cancelOrder.
     */
    async markOrderFailed(input: { orderId: string; reason: string }): Promise<TransitionOutcome> {
      const reason = await customerReasonOf(input.orderId, input.reason);
      return transition(input.orderId, FAILING, 'FAILED', { failure_reason: reason }, {
        eventType: 'ORDER_FAILED',
        payload: { orderId: input.orderId, reason },
      });
    },

    /**
     * The saga gave up and an undo kept failing past its retry horizon: COMPENSATION_FAILED, so the
     * order says it needs attention (it may still hold stock or money) instead of claiming FAILED.
     * It can still be cancelled, or its saga retried by an operator. The reason is the customer's
     * version, as for FAILED.
     */
    async markOrderCompensationFailed(input: { orderId: string; reason: string }): Promise<TransitionOutcome> {
      const reason = await customerReasonOf(input.orderId, input.reason);
      return transition(input.orderId, IN_CHECKOUT, 'COMPENSATION_FAILED', { failure_reason: reason }, {
        eventType: 'ORDER_COMPENSATION_FAILED',
        payload: { orderId: input.orderId, reason },
      });
    },

    /**
     * PENDING / AWAITING_CONFIRMATION / CONFIRMING / PAID / COMPENSATION_FAILED -> CANCELLING (ORDER_CANCELLATION_REQUESTED). From here on
     * createOrder's own transitions no longer apply, so it cannot mark the order PAID behind our back.
     * FAILED or CANCELLED orders are not cancellable (a decision). Repeated after its commit, it
     * answers CANCELLING as the previous status.
     */
    async requestOrderCancellation(input: { orderId: string; reason: string }): Promise<{ previousStatus: CancellableStatus | 'CANCELLING' }> {
      return db.transaction().execute(async (trx) => {
        const order = await trx.selectFrom('orders').select('status').where('id', '=', input.orderId).forUpdate().executeTakeFirst();
        if (!order) throw ApplicationFailure.nonRetryable(`order ${input.orderId} does not exist`, FAILURE_TYPES.orderNotFound);
        if (order.status === 'CANCELLING') return { previousStatus: 'CANCELLING' };
        if (!CANCELLABLE.includes(order.status)) {
          throw ApplicationFailure.nonRetryable(`order ${input.orderId} is ${order.status} and cannot be cancelled`, FAILURE_TYPES.orderNotCancellable, {
            orderId: input.orderId,
            status: order.status,
          });
        }
        await trx
          .updateTable('orders')
          .set({ status: 'CANCELLING', cancellation_reason: input.reason, updated_at: sql`now()` })
          .where('id', '=', input.orderId)
          .execute();
        await appendOutboxEvent(trx, {
          eventType: 'ORDER_CANCELLATION_REQUESTED',
          aggregateId: input.orderId,
          correlationId: input.orderId,
          payload: { orderId: input.orderId, reason: input.reason },
        });
        return { previousStatus: order.status as CancellableStatus };
      });
    },

    /** CANCELLING -> CANCELLED (ORDER_CANCELLED), once stock and money are back. */
    async markOrderCancelled(input: { orderId: string; reason: string; refundId: string | null }): Promise<TransitionOutcome> {
      return transition(input.orderId, ['CANCELLING'], 'CANCELLED', {}, {
        eventType: 'ORDER_CANCELLED',
        payload: { orderId: input.orderId, reason: input.reason, refundId: input.refundId },
      });
    },

    /**
     * cancelOrder's wait for the order's createOrder saga: asks it to cancel (Temporal cancellation
     * reaches its tccPayment child, and both compensate) and returns once it has closed, however it
     * closed. A createOrder that already closed, or never existed, returns at once. Heartbeats so a
     * worker dying here is noticed and the wait resumes on another worker.
     */
    async settleCreateOrder(orderId: string): Promise<void> {
      const context = Context.current();
      const handle = context.client.workflow.getHandle(createOrderWorkflowId(orderId));
      let running: boolean;
      try {
        running = (await handle.describe()).status.name === 'RUNNING';
      } catch (error) {
        if (error instanceof WorkflowNotFoundError) return;
        throw error;
      }
      if (!running) return;
      await handle.cancel();
      const beat = setInterval(() => context.heartbeat(), 1_000);
      try {
        await handle.result();
      } catch (error) {
        // How createOrder ended is its own business (it recorded it); we only needed it to end.
        if (!(error instanceof WorkflowFailedError) && !(error instanceof CancelledFailure)) throw error;
      } finally {
        clearInterval(beat);
      }
    },
  };
}

export type OrderActivities = ReturnType<typeof createOrderActivities>;
