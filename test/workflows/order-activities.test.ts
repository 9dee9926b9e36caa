/**
 * The order saga's transitions on a real order_db, called directly: each is conditional, so a retry
 * after a commit changes nothing twice, and a transition that lost a race to cancelOrder says so.
 */
import { randomUUID } from 'node:crypto';
import type { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrderActivities, type OrderActivities } from '../../activities/order';
import { FAILURE_TYPES } from '../../workflows/order-contract';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { orderEvents } from './saga-harness';

describe('order activities', () => {
  let order: TestDatabase<'order'>;
  let activities: OrderActivities;
  beforeAll(async () => {
    order = await createTestDatabase('order');
    // As the worker runs them: as oms_worker, with only its privileges.
    activities = createOrderActivities({ db: order.worker });
  });
  afterAll(() => order?.destroy());

  async function pendingOrder(status: 'ACTIVE' | 'INACTIVE' = 'ACTIVE'): Promise<{ orderId: string; customerId: string }> {
    const customer = await order.db
      .insertInto('customers')
      .values({ name: 'C', email: `${randomUUID()}@example.test`, status })
      .returning('id')
      .executeTakeFirstOrThrow();
    const orderId = randomUUID();
    await order.db
      .insertInto('orders')
      .values({ id: orderId, customer_id: customer.id, total_minor: 1250, currency: 'USD', payment_method: 'CARD', confirmation_mode: 'auto', workflow_id: `order-${orderId}` })
      .execute();
    return { orderId, customerId: customer.id };
  }

  const decline = (type: string) => expect.objectContaining({ name: 'ApplicationFailure', type, nonRetryable: true }) as ApplicationFailure;

  it('markOrderPaid repeated after its commit reports applied and writes its events once', async () => {
    const { orderId } = await pendingOrder();
    const paid = { orderId, paymentId: randomUUID(), paymentReservationId: randomUUID(), transactionId: 'TXN-1' };
    expect(await activities.markOrderPaid(paid)).toEqual({ applied: true, status: 'PAID' });
    expect(await activities.markOrderPaid(paid)).toEqual({ applied: true, status: 'PAID' });
    expect(await orderEvents(order.db, orderId)).toEqual(['ORDER_CONFIRMED', 'ORDER_PAID']);
    // Another payment cannot claim the order.
    expect(await activities.markOrderPaid({ ...paid, paymentId: randomUUID() })).toEqual({ applied: false, status: 'PAID' });
  });

  it('once cancellation was requested, createOrder can mark the order neither PAID nor FAILED', async () => {
    const { orderId } = await pendingOrder();
    expect(await activities.requestOrderCancellation({ orderId, reason: 'r' })).toEqual({ previousStatus: 'PENDING' });
    expect(await activities.markOrderPaid({ orderId, paymentId: randomUUID(), paymentReservationId: randomUUID(), transactionId: 'T' })).toEqual({
      applied: false,
      status: 'CANCELLING',
    });
    expect(await activities.markOrderFailed({ orderId, reason: 'x' })).toEqual({ applied: false, status: 'CANCELLING' });
    // Repeated (a retry after the commit): answered, not refused, and no second event.
    expect(await activities.requestOrderCancellation({ orderId, reason: 'r' })).toEqual({ previousStatus: 'CANCELLING' });
    expect(await activities.markOrderCancelled({ orderId, reason: 'r', refundId: null })).toEqual({ applied: true, status: 'CANCELLED' });
    expect(await orderEvents(order.db, orderId)).toEqual(['ORDER_CANCELLATION_REQUESTED', 'ORDER_CANCELLED']);
  });

  it('a FAILED order is not cancellable: a non-retryable decline, nothing written', async () => {
    const { orderId } = await pendingOrder();
    await activities.markOrderFailed({ orderId, reason: 'InsufficientStock: none left' });
    await expect(activities.requestOrderCancellation({ orderId, reason: 'r' })).rejects.toEqual(decline(FAILURE_TYPES.orderNotCancellable));
    expect(await orderEvents(order.db, orderId)).toEqual(['ORDER_FAILED']);
  });

  it('validateCustomer declines unknown and inactive customers', async () => {
    const { customerId } = await pendingOrder('INACTIVE');
    await expect(activities.validateCustomer(customerId)).rejects.toEqual(decline(FAILURE_TYPES.customerInactive));
    await expect(activities.validateCustomer(randomUUID())).rejects.toEqual(decline(FAILURE_TYPES.customerNotFound));
    const active = await pendingOrder('ACTIVE');
    await expect(activities.validateCustomer(active.customerId)).resolves.toBeUndefined();
  });
});
