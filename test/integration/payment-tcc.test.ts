/**
 * The payment TCC participant against the real PostgreSQL and Redis: each TCC rule, the barrier
 * that blocks a try arriving after its cancel, expiry, refunds, the outbox row every change
 * writes, and the 4xx answers that change nothing.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expirePaymentReservations } from '../../services/payment/ledger';
import { parseEvent } from '../../lib/events';
import { idempotencyStoreKey } from '../../services/shared/http/idempotency-plugin';
import { testOperator } from '../helpers/auth';
import { startTestPaymentService, type TestPaymentService } from '../helpers/payment-service';

let service: TestPaymentService;

beforeAll(async () => {
  // A long sweep interval: tests that need expiry run the sweep themselves.
  service = await startTestPaymentService({ RESERVATION_TTL_SECONDS: '900', RESERVATION_SWEEP_INTERVAL_MS: '3600000' });
});
afterAll(() => service.close());

interface RefundBody {
  refundId: string;
  paymentId: string;
  amount: string;
  reason: string | null;
  source: string;
}

interface PaymentBody {
  paymentId: string;
  amount: string;
  refundedAmount: string;
  status: string;
  paymentMethod: string;
  refunds: RefundBody[];
}

/** Every field any payment response (or error) may carry: each test reads the ones its route returns. */
interface ResponseBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
  customerId: string;
  balance: string;
  held: string;
  available: string;
  reservationId: string;
  orderId: string;
  amount: string;
  currency: string;
  expiresAt: string;
  status: string;
  paymentId: string;
  transactionId: string;
  refund: RefundBody;
  payment: PaymentBody;
  payments: PaymentBody[];
  refunds: RefundBody[];
}

interface CallOptions {
  body?: unknown;
  key?: string;
  token?: string | null;
  headers?: Record<string, string>;
}

async function call(method: 'GET' | 'POST', url: string, { body, key, token, headers = {} }: CallOptions = {}) {
  const response = await service.app.inject({
    method,
    url,
    headers: {
      // By default as the route's real caller: the saga worker for the TCC routes, an operator for the rest.
      ...(token === null ? {} : token === undefined ? service.authFor(url) : { authorization: `Bearer ${token}` }),
      ...(key ? { 'idempotency-key': key } : {}),
      ...headers,
    },
    ...(body === undefined ? {} : typeof body === 'string' ? { payload: body } : { payload: body as object }),
  });
  return { status: response.statusCode, body: response.json<ResponseBody>(), headers: response.headers };
}

async function openAccount(balance: string, currency = 'USD') {
  const customerId = `cust-${randomUUID()}`;
  const response = await call('POST', '/accounts', { body: { customerId, balance, currency } });
  expect(response.status).toBe(201);
  return customerId;
}

const account = async (customerId: string) => (await call('GET', `/accounts/${customerId}`)).body;

const tryPayment = (orderId: string, customerId: string, amount: string, currency = 'USD') =>
  call('POST', '/payments/try', { body: { orderId, customerId, amount, currency } });

async function outboxEvents(aggregateId: string) {
  const rows = await service.db.selectFrom('outbox_events').selectAll().where('aggregate_id', '=', aggregateId).orderBy('id').execute();
  return rows.map((row) => parseEvent(row.payload));
}

async function barriers(orderId: string) {
  const rows = await service.db.selectFrom('tcc_barriers').select(['operation', 'reason']).where('transaction_id', '=', orderId).orderBy('operation').execute();
  return rows.map((row) => `${row.operation}:${row.reason}`);
}

/** Moves a hold's expiry into the past, as if its TTL had run out. */
async function backdate(reservationId: string) {
  await service.db
    .updateTable('payment_reservations')
    .set({ expires_at: sql`now() - interval '1 second'` })
    .where('id', '=', reservationId)
    .execute();
}

describe('accounts', () => {
  it('opens an account once, shows balance, held and available as decimal strings, and writes ACCOUNT_OPENED', async () => {
    const customerId = `cust-${randomUUID()}`;
    const created = await call('POST', '/accounts', { body: { customerId, balance: '120.50', currency: 'EUR' } });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({ customerId, currency: 'EUR', balance: '120.50', held: '0.00', available: '120.50' });
    expect(await account(customerId)).toEqual(created.body);

    const again = await call('POST', '/accounts', { body: { customerId, balance: '1.00', currency: 'EUR' } });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('ACCOUNT_ALREADY_EXISTS');
    expect((await account(customerId)).balance).toBe('120.50');

    const events = await outboxEvents(customerId);
    expect(events.map((e) => e.eventType)).toEqual(['ACCOUNT_OPENED']);
    expect(events[0]?.payload).toEqual({ customerId, balance: '120.50', currency: 'EUR' });
  });

  it('answers 404 ACCOUNT_NOT_FOUND for an unknown customer', async () => {
    const response = await call('GET', `/accounts/nobody-${randomUUID()}`);
    expect(response.status).toBe(404);
    expect(response.body.error.code).toBe('ACCOUNT_NOT_FOUND');
  });
});

describe('try', () => {
  it('holds the amount, answers 201 with the reservation, and writes PAYMENT_RESERVED and the TRY barrier', async () => {
    const customerId = await openAccount('100.00');
    const orderId = `order-${randomUUID()}`;
    const response = await tryPayment(orderId, customerId, '30.25');
    expect(response.status).toBe(201);
    expect(response.body).toMatchObject({ orderId, customerId, amount: '30.25', currency: 'USD', status: 'reserved' });
    const ttl = new Date(response.body.expiresAt).getTime() - Date.now();
    expect(ttl).toBeGreaterThan(890_000);
    expect(ttl).toBeLessThanOrEqual(900_000);
    expect(await account(customerId)).toMatchObject({ balance: '100.00', held: '30.25', available: '69.75' });

    const events = await outboxEvents(orderId);
    expect(events.map((e) => e.eventType)).toEqual(['PAYMENT_RESERVED']);
    // The event's correlation id is the request's id (the saga's, when the worker calls).
    expect(events[0]).toMatchObject({ aggregateType: 'PAYMENT', correlationId: response.headers['x-request-id'], payload: { reservationId: response.body.reservationId, amount: '30.25' } });
    expect(await barriers(orderId)).toEqual(['try:try']);
  });

  it('is idempotent per order: a repeated try returns the same reservation and holds nothing more', async () => {
    const customerId = await openAccount('50.00');
    const orderId = `order-${randomUUID()}`;
    const first = await tryPayment(orderId, customerId, '10.00');
    const second = await tryPayment(orderId, customerId, '10.00');
    expect(second.status).toBe(201);
    expect(second.body).toEqual(first.body);
    expect((await account(customerId)).held).toBe('10.00');
    expect((await outboxEvents(orderId)).map((e) => e.eventType)).toEqual(['PAYMENT_RESERVED']);

    const otherTerms = await tryPayment(orderId, customerId, '11.00');
    expect(otherTerms.status).toBe(409);
    expect(otherTerms.body.error.code).toBe('RESERVATION_MISMATCH');
    expect((await account(customerId)).held).toBe('10.00');
  });

  it('refuses with 402 INSUFFICIENT_FUNDS, holds nothing, and records only PAYMENT_FAILED', async () => {
    const customerId = await openAccount('20.00');
    await tryPayment(`order-${randomUUID()}`, customerId, '15.00');
    const orderId = `order-${randomUUID()}`;
    const response = await tryPayment(orderId, customerId, '5.01');
    expect(response.status).toBe(402);
    expect(response.body.error).toMatchObject({ code: 'INSUFFICIENT_FUNDS', details: { required: '5.01', available: '5.00' } });
    expect(await account(customerId)).toMatchObject({ balance: '20.00', held: '15.00', available: '5.00' });
    expect(await service.db.selectFrom('payment_reservations').select('id').where('order_id', '=', orderId).execute()).toEqual([]);
    // The refused try left no barrier, so a retry once money is there may still succeed.
    expect(await barriers(orderId)).toEqual([]);
    const events = await outboxEvents(orderId);
    expect(events.map((e) => e.eventType)).toEqual(['PAYMENT_FAILED']);
    expect(events[0]?.payload).toMatchObject({ orderId, reservationId: null, errorCode: 'INSUFFICIENT_FUNDS' });

    const exact = await tryPayment(orderId, customerId, '5.00');
    expect(exact.status).toBe(201);
    expect((await account(customerId)).available).toBe('0.00');
  });

  it('answers 404 ACCOUNT_NOT_FOUND and 422 CURRENCY_MISMATCH without holding or recording anything', async () => {
    const unknown = `order-${randomUUID()}`;
    const notFound = await tryPayment(unknown, `nobody-${randomUUID()}`, '1.00');
    expect(notFound.status).toBe(404);
    expect(notFound.body.error.code).toBe('ACCOUNT_NOT_FOUND');

    const customerId = await openAccount('10.00', 'USD');
    const wrongCurrency = `order-${randomUUID()}`;
    const mismatch = await tryPayment(wrongCurrency, customerId, '1.00', 'EUR');
    expect(mismatch.status).toBe(422);
    expect(mismatch.body.error).toMatchObject({ code: 'CURRENCY_MISMATCH', details: { accountCurrency: 'USD', requested: 'EUR' } });
    expect((await account(customerId)).held).toBe('0.00');
    for (const orderId of [unknown, wrongCurrency]) {
      expect(await outboxEvents(orderId)).toEqual([]);
      expect(await barriers(orderId)).toEqual([]);
    }
  });
});

describe('confirm', () => {
  it('captures the hold once: balance and held drop, a payment is recorded, PAYMENT_COMPLETED is written; a repeat returns the same payment', async () => {
    const customerId = await openAccount('100.00');
    const orderId = `order-${randomUUID()}`;
    const { reservationId } = (await tryPayment(orderId, customerId, '40.00')).body;
    const confirmed = await call('POST', `/payments/confirm/${reservationId}`, { body: { paymentMethod: 'CARD' } });
    expect(confirmed.status).toBe(200);
    expect(confirmed.body).toMatchObject({ reservationId, orderId, amount: '40.00', status: 'confirmed' });
    expect(confirmed.body.transactionId).toMatch(/^TXN-/);
    expect(await account(customerId)).toEqual({ customerId, currency: 'USD', balance: '60.00', held: '0.00', available: '60.00' });

    const again = await call('POST', `/payments/confirm/${reservationId}`, { body: { paymentMethod: 'CARD' } });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(confirmed.body);
    expect((await account(customerId)).balance).toBe('60.00');
    expect((await outboxEvents(orderId)).map((e) => e.eventType)).toEqual(['PAYMENT_RESERVED', 'PAYMENT_COMPLETED']);
    expect(await barriers(orderId)).toEqual(['confirm:confirm', 'try:try']);

    const listed = await call('GET', `/payments?orderId=${orderId}`);
    expect(listed.body.payments).toHaveLength(1);
    expect(listed.body.payments[0]).toMatchObject({ paymentId: confirmed.body.paymentId, amount: '40.00', refundedAmount: '0.00', status: 'COMPLETED', paymentMethod: 'CARD', refunds: [] });

    // A repeated try after the confirm shows the reservation as it now is.
    const retriedTry = await tryPayment(orderId, customerId, '40.00');
    expect(retriedTry.body).toMatchObject({ reservationId, status: 'confirmed' });
  });

  it('refuses a confirm after cancel with 409 RESERVATION_CANCELLED, changing nothing', async () => {
    const customerId = await openAccount('10.00');
    const orderId = `order-${randomUUID()}`;
    const { reservationId } = (await tryPayment(orderId, customerId, '4.00')).body;
    expect((await call('POST', `/payments/cancel/${reservationId}`)).status).toBe(200);
    const confirm = await call('POST', `/payments/confirm/${reservationId}`, { body: { paymentMethod: 'CARD' } });
    expect(confirm.status).toBe(409);
    expect(confirm.body.error.code).toBe('RESERVATION_CANCELLED');
    expect(await account(customerId)).toMatchObject({ balance: '10.00', held: '0.00' });
    expect((await outboxEvents(orderId)).map((e) => e.eventType)).toEqual(['PAYMENT_RESERVED', 'PAYMENT_CANCELLED']);
  });

  it('answers 404 RESERVATION_NOT_FOUND for an unknown reservation and 400 for an id that is not a uuid', async () => {
    const unknown = await call('POST', `/payments/confirm/${randomUUID()}`, { body: { paymentMethod: 'CARD' } });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('RESERVATION_NOT_FOUND');
    const malformed = await call('POST', '/payments/confirm/not-a-uuid', { body: { paymentMethod: 'CARD' } });
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.code).toBe('VALIDATION_ERROR');
  });
});

describe('cancel', () => {
  it('releases the hold once and writes PAYMENT_CANCELLED; a repeat answers the same without effect', async () => {
    const customerId = await openAccount('25.00');
    const orderId = `order-${randomUUID()}`;
    const { reservationId } = (await tryPayment(orderId, customerId, '25.00')).body;
    const cancelled = await call('POST', `/payments/cancel/${reservationId}`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toEqual({ reservationId, orderId, status: 'cancelled' });
    expect(await account(customerId)).toMatchObject({ balance: '25.00', held: '0.00', available: '25.00' });

    const again = await call('POST', `/payments/cancel/${reservationId}`);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(cancelled.body);
    const byOrder = await call('POST', `/payments/cancel-by-order/${orderId}`);
    expect(byOrder.body).toEqual(cancelled.body);
    expect((await account(customerId)).held).toBe('0.00');

    const events = await outboxEvents(orderId);
    expect(events.map((e) => e.eventType)).toEqual(['PAYMENT_RESERVED', 'PAYMENT_CANCELLED']);
    expect(events[1]?.payload).toMatchObject({ reservationId, amount: '25.00', reason: 'CANCELLED' });
    expect(await barriers(orderId)).toEqual(['cancel:cancel', 'try:try']);
  });

  it('refuses a cancel after confirm with 409 RESERVATION_ALREADY_CONFIRMED, by reservation and by order', async () => {
    const customerId = await openAccount('10.00');
    const orderId = `order-${randomUUID()}`;
    const { reservationId } = (await tryPayment(orderId, customerId, '3.00')).body;
    await call('POST', `/payments/confirm/${reservationId}`, { body: { paymentMethod: 'CARD' } });
    for (const url of [`/payments/cancel/${reservationId}`, `/payments/cancel-by-order/${orderId}`]) {
      const cancel = await call('POST', url);
      expect(cancel.status).toBe(409);
      expect(cancel.body.error.code).toBe('RESERVATION_ALREADY_CONFIRMED');
    }
    expect(await account(customerId)).toMatchObject({ balance: '7.00', held: '0.00' });
    expect((await outboxEvents(orderId)).map((e) => e.eventType)).toEqual(['PAYMENT_RESERVED', 'PAYMENT_COMPLETED']);
  });

  it('cancels by order id when the caller never saw the reservation id', async () => {
    const customerId = await openAccount('10.00');
    const orderId = `order-${randomUUID()}`;
    const { reservationId } = (await tryPayment(orderId, customerId, '6.00')).body;
    const cancel = await call('POST', `/payments/cancel-by-order/${orderId}`);
    expect(cancel.body).toEqual({ reservationId, orderId, status: 'cancelled' });
    expect((await account(customerId)).held).toBe('0.00');
  });

  it('a cancel that arrives before its try writes the barrier, so the late try is refused and nothing is held', async () => {
    const customerId = await openAccount('10.00');
    const orderId = `order-${randomUUID()}`;
    const cancel = await call('POST', `/payments/cancel-by-order/${orderId}`);
    expect(cancel.status).toBe(200);
    expect(cancel.body).toEqual({ reservationId: null, orderId, status: 'cancelled' });
    expect(await barriers(orderId)).toEqual(['cancel:cancel', 'try:cancel']);

    const lateTry = await tryPayment(orderId, customerId, '6.00');
    expect(lateTry.status).toBe(409);
    expect(lateTry.body.error.code).toBe('TRY_AFTER_CANCEL');
    expect(await account(customerId)).toMatchObject({ held: '0.00', available: '10.00' });
    expect(await service.db.selectFrom('payment_reservations').select('id').where('order_id', '=', orderId).execute()).toEqual([]);
    // No reservation existed and no money moved: the barrier-only cancel writes no event.
    expect(await outboxEvents(orderId)).toEqual([]);
    expect((await call('POST', `/payments/cancel-by-order/${orderId}`)).body).toEqual(cancel.body);
  });

  it('a try and a cancel racing for one order end either reserved-then-released or refused: never held', async () => {
    const customerId = await openAccount('100.00');
    const cancel = (orderId: string) => call('POST', `/payments/cancel-by-order/${orderId}`);
    // Both orders of arrival must occur, or a barrier that let every late try win would pass: a
    // third of the orders see their cancel land first, a third their try, a third race freely.
    const arrivals = ['cancel-first', 'try-first', 'race'] as const;
    const pairs = Array.from({ length: 21 }, (_, index) => ({ orderId: `order-${randomUUID()}`, arrival: arrivals[index % 3]! }));
    const results = await Promise.all(
      pairs.map(async ({ orderId, arrival }) => {
        if (arrival === 'cancel-first') {
          const cancelled = await cancel(orderId);
          return { arrival, tried: await tryPayment(orderId, customerId, '1.00'), cancelled };
        }
        if (arrival === 'try-first') {
          const tried = await tryPayment(orderId, customerId, '1.00');
          return { arrival, tried, cancelled: await cancel(orderId) };
        }
        const [tried, cancelled] = await Promise.all([tryPayment(orderId, customerId, '1.00'), cancel(orderId)]);
        return { arrival, tried, cancelled };
      }),
    );
    for (const { arrival, tried, cancelled } of results) {
      expect(cancelled.status).toBe(200);
      if (arrival === 'cancel-first') expect(tried.status).toBe(409);
      if (arrival === 'try-first') expect(tried.status).toBe(201);
      if (tried.status === 201) expect(cancelled.body.reservationId).toBe(tried.body.reservationId);
      else expect(tried.body.error.code).toBe('TRY_AFTER_CANCEL');
    }
    expect(await account(customerId)).toMatchObject({ balance: '100.00', held: '0.00' });
  });
});

describe('expiry', () => {
  it('the sweep expires an overdue hold, frees its funds, writes PAYMENT_CANCELLED(EXPIRED), and confirm is then refused', async () => {
    const customerId = await openAccount('10.00');
    const orderId = `order-${randomUUID()}`;
    const { reservationId } = (await tryPayment(orderId, customerId, '8.00')).body;
    const keep = (await tryPayment(`order-${randomUUID()}`, customerId, '1.00')).body;
    await backdate(reservationId);

    expect(await expirePaymentReservations(service.db)).toBeGreaterThanOrEqual(1);
    expect(await account(customerId)).toMatchObject({ balance: '10.00', held: '1.00', available: '9.00' });
    const confirm = await call('POST', `/payments/confirm/${reservationId}`, { body: { paymentMethod: 'CARD' } });
    expect(confirm.status).toBe(409);
    expect(confirm.body.error.code).toBe('RESERVATION_EXPIRED');
    // Cancelling an expired hold is harmless: nothing is left to release.
    expect((await call('POST', `/payments/cancel/${reservationId}`)).body).toEqual({ reservationId, orderId, status: 'expired' });

    const events = await outboxEvents(orderId);
    expect(events.map((e) => e.eventType)).toEqual(['PAYMENT_RESERVED', 'PAYMENT_CANCELLED']);
    expect(events[1]?.payload).toMatchObject({ reason: 'EXPIRED', amount: '8.00' });
    // The other hold was not due and is still confirmable.
    expect((await call('POST', `/payments/confirm/${keep.reservationId}`, { body: { paymentMethod: 'CARD' } })).status).toBe(200);
  });

  it('confirm checks the TTL itself: an overdue hold the sweeper has not reached is expired and the confirm refused', async () => {
    const customerId = await openAccount('10.00');
    const orderId = `order-${randomUUID()}`;
    const { reservationId } = (await tryPayment(orderId, customerId, '5.00')).body;
    await backdate(reservationId);
    const confirm = await call('POST', `/payments/confirm/${reservationId}`, { body: { paymentMethod: 'CARD' } });
    expect(confirm.status).toBe(409);
    expect(confirm.body.error.code).toBe('RESERVATION_EXPIRED');
    expect(await account(customerId)).toMatchObject({ balance: '10.00', held: '0.00' });
    expect((await outboxEvents(orderId)).map((e) => [e.eventType, e.payload.reason])).toEqual([
      ['PAYMENT_RESERVED', undefined],
      ['PAYMENT_CANCELLED', 'EXPIRED'],
    ]);
    expect(await service.db.selectFrom('payments').select('id').where('order_id', '=', orderId).execute()).toEqual([]);
  });

  it('the service sweeps on its own with a short TTL', async () => {
    const fast = await startTestPaymentService({ RESERVATION_TTL_SECONDS: '1', RESERVATION_SWEEP_INTERVAL_MS: '200' });
    try {
      const headers = fast.operator;
      const customerId = `cust-${randomUUID()}`;
      await fast.app.inject({ method: 'POST', url: '/accounts', headers, payload: { customerId, balance: '5.00', currency: 'USD' } });
      const tried = await fast.app.inject({ method: 'POST', url: '/payments/try', headers: fast.worker, payload: { orderId: `o-${randomUUID()}`, customerId, amount: '5.00', currency: 'USD' } });
      expect(tried.statusCode).toBe(201);
      await expect
        .poll(async () => (await fast.app.inject({ method: 'GET', url: `/accounts/${customerId}`, headers })).json<{ held: string }>().held, { timeout: 10_000, interval: 200 })
        .toBe('0.00');
      const status = await fast.db.selectFrom('payment_reservations').select('status').where('customer_id', '=', customerId).executeTakeFirstOrThrow();
      expect(status.status).toBe('EXPIRED');
      const metrics = await fast.app.inject({ method: 'GET', url: '/metrics' });
      expect(metrics.body).toMatch(/oms_tcc_operations_total\{[^}]*participant="payment"[^}]*operation="expire"[^}]*outcome="applied"[^}]*\} 1/);
      expect(metrics.body).toMatch(/oms_tcc_timeout_total\{[^}]*participant="payment"[^}]*\} 1/);
      expect(metrics.body).toMatch(/oms_tcc_completed_total\{[^}]*participant="payment",outcome="expired"[^}]*\} 1/);
    } finally {
      await fast.close();
    }
  });
});

describe('refunds', () => {
  async function paidOrder(balance: string, amount: string) {
    const customerId = await openAccount(balance);
    const orderId = `order-${randomUUID()}`;
    const { reservationId } = (await tryPayment(orderId, customerId, amount)).body;
    const { paymentId } = (await call('POST', `/payments/confirm/${reservationId}`, { body: { paymentMethod: 'CARD' } })).body;
    return { customerId, orderId, paymentId };
  }

  it('refunds partially, then the rest; never more than was captured', async () => {
    const { customerId, orderId, paymentId } = await paidOrder('100.00', '60.00');
    const partial = await call('POST', `/payments/${paymentId}/refunds`, { body: { amount: '20.00', reason: 'damaged item' } });
    expect(partial.status).toBe(201);
    expect(partial.body.refund).toMatchObject({ paymentId, amount: '20.00', reason: 'damaged item', source: 'API' });
    expect(partial.body.payment).toMatchObject({ refundedAmount: '20.00', status: 'PARTIALLY_REFUNDED' });
    expect((await account(customerId)).balance).toBe('60.00');

    const tooMuch = await call('POST', `/payments/${paymentId}/refunds`, { body: { amount: '40.01' } });
    expect(tooMuch.status).toBe(409);
    expect(tooMuch.body.error).toMatchObject({ code: 'REFUND_EXCEEDS_PAYMENT', details: { requested: '40.01', refundable: '40.00' } });

    const rest = await call('POST', `/payments/${paymentId}/refunds`, { body: {} });
    expect(rest.status).toBe(201);
    expect(rest.body.refund.amount).toBe('40.00');
    expect(rest.body.payment).toMatchObject({ refundedAmount: '60.00', status: 'REFUNDED' });
    expect((await account(customerId)).balance).toBe('100.00');

    const nothingLeft = await call('POST', `/payments/${paymentId}/refunds`, { body: {} });
    expect(nothingLeft.status).toBe(409);
    expect((await outboxEvents(orderId)).map((e) => e.eventType)).toEqual(['PAYMENT_RESERVED', 'PAYMENT_COMPLETED', 'PAYMENT_REFUNDED', 'PAYMENT_REFUNDED']);

    const fetched = await call('GET', `/payments/${paymentId}`);
    expect(fetched.body.refunds.map((r) => r.amount)).toEqual(['20.00', '40.00']);
  });

  it('a refund retried with the same Idempotency-Key returns the money once and replays the answer', async () => {
    const { customerId, orderId, paymentId } = await paidOrder('50.00', '50.00');
    const key = `refund-${randomUUID()}`;
    const first = await call('POST', `/payments/${paymentId}/refunds`, { body: { amount: '10.00' }, key });
    const second = await call('POST', `/payments/${paymentId}/refunds`, { body: { amount: '10.00' }, key });
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.body).toEqual(first.body);
    expect((await account(customerId)).balance).toBe('10.00');
    expect((await outboxEvents(orderId)).filter((e) => e.eventType === 'PAYMENT_REFUNDED')).toHaveLength(1);

    const otherBody = await call('POST', `/payments/${paymentId}/refunds`, { body: { amount: '11.00' }, key });
    expect(otherBody.status).toBe(422);
    expect(otherBody.body.error.code).toBe('IDEMPOTENCY_KEY_REUSED');
  });

  it('a refund whose stored answer was lost is not paid twice when retried with its key', async () => {
    const { customerId, orderId, paymentId } = await paidOrder('50.00', '50.00');
    const key = `refund-${randomUUID()}`;
    const first = await call('POST', `/payments/${paymentId}/refunds`, { body: { amount: '10.00' }, key });
    expect(first.status).toBe(201);
    // The refund committed but its answer never reached the key's record: the process died before
    // storing it (the record's lock then passes) or storing it failed (FAILED). Either way the
    // record lets the same request run again, and nothing in Redis says otherwise.
    const loseAnswer = async () => {
      await service.db.updateTable('idempotency_records').set({ status: 'FAILED', response_status: null, response_data: null }).where('idempotency_key', '=', idempotencyStoreKey(testOperator, key)).execute();
      await service.redis.del(`oms:idempotency:payment:${idempotencyStoreKey(testOperator, key)}`);
    };
    await loseAnswer();

    const retried = await call('POST', `/payments/${paymentId}/refunds`, { body: { amount: '10.00' }, key });
    expect(retried.status).toBe(201);
    expect(retried.headers['idempotent-replayed']).toBeUndefined();
    expect(retried.body.refund).toEqual(first.body.refund);
    expect((await account(customerId)).balance).toBe('10.00');
    expect((await outboxEvents(orderId)).filter((e) => e.eventType === 'PAYMENT_REFUNDED')).toHaveLength(1);

    // Once the key's record is gone altogether (expired and deleted), the refund still remembers
    // its key: another amount under it is refused rather than refunded.
    await service.db.deleteFrom('idempotency_records').where('idempotency_key', '=', idempotencyStoreKey(testOperator, key)).execute();
    await service.redis.del(`oms:idempotency:payment:${idempotencyStoreKey(testOperator, key)}`);
    const otherAmount = await call('POST', `/payments/${paymentId}/refunds`, { body: { amount: '5.00' }, key });
    expect(otherAmount.status).toBe(422);
    expect(otherAmount.body.error.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect((await account(customerId)).balance).toBe('10.00');
  });

  it("the order saga's refund-by-order returns what is left exactly once, however often it is called", async () => {
    const { customerId, orderId, paymentId } = await paidOrder('80.00', '30.00');
    await call('POST', `/payments/${paymentId}/refunds`, { body: { amount: '5.00' } });
    const calls = await Promise.all([1, 2, 3].map(() => call('POST', `/payments/refund-by-order/${orderId}`, { body: { reason: 'order cancelled' } })));
    expect(calls.map((c) => c.status).sort()).toEqual([200, 200, 201]);
    const refundIds = new Set(calls.map((c) => c.body.refund.refundId));
    expect(refundIds.size).toBe(1);
    expect(calls[0]?.body.refund).toMatchObject({ amount: '25.00', source: 'ORDER', reason: 'order cancelled' });
    expect(await account(customerId)).toMatchObject({ balance: '80.00', held: '0.00' });
    expect((await outboxEvents(orderId)).filter((e) => e.eventType === 'PAYMENT_REFUNDED')).toHaveLength(2);

    const noPayment = await call('POST', `/payments/refund-by-order/order-${randomUUID()}`);
    expect(noPayment.status).toBe(404);
    expect(noPayment.body.error.code).toBe('PAYMENT_NOT_FOUND');
  });
});

describe('what clients get wrong', () => {
  it('answers 401 without a valid credential, on every route, and changes nothing', async () => {
    const customerId = `cust-${randomUUID()}`;
    const cancelledOrder = `order-${randomUUID()}`;
    const routes: Array<['GET' | 'POST', string, unknown]> = [
      ['POST', '/accounts', { customerId, balance: '1.00', currency: 'USD' }],
      ['GET', `/accounts/${customerId}`, undefined],
      ['POST', '/payments/try', { orderId: 'o', customerId, amount: '1.00', currency: 'USD' }],
      ['POST', `/payments/confirm/${randomUUID()}`, { paymentMethod: 'CARD' }],
      ['POST', `/payments/cancel/${randomUUID()}`, undefined],
      ['POST', `/payments/cancel-by-order/${cancelledOrder}`, undefined],
      ['POST', `/payments/${randomUUID()}/refunds`, {}],
      ['POST', `/payments/refund-by-order/order-${randomUUID()}`, undefined],
      ['GET', '/payments', undefined],
      ['GET', `/payments/${randomUUID()}`, undefined],
    ];
    for (const [method, url, body] of routes) {
      for (const token of [null, 'wrong-token-wrong-token']) {
        const response = await call(method, url, { body, token });
        expect(response.status, `${method} ${url}`).toBe(401);
        expect(response.body.error.code).toBe('UNAUTHORIZED');
      }
    }
    expect(await service.db.selectFrom('customer_accounts').select('customer_id').where('customer_id', '=', customerId).execute()).toEqual([]);
    expect(await barriers(cancelledOrder)).toEqual([]);
  });

  it('refuses bad input with a 4xx error body and leaves accounts, holds and the outbox as they were', async () => {
    const customerId = await openAccount('10.00');
    const before = {
      outbox: (await service.db.selectFrom('outbox_events').select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow()).n,
      reservations: (await service.db.selectFrom('payment_reservations').select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow()).n,
    };
    const orderId = `order-${randomUUID()}`;
    const cases: Array<{ body: unknown; status: number; code: string; headers?: Record<string, string> }> = [
      { body: { orderId, customerId, amount: '0.00', currency: 'USD' }, status: 400, code: 'VALIDATION_ERROR' },
      { body: { orderId, customerId, amount: '-1.00', currency: 'USD' }, status: 400, code: 'VALIDATION_ERROR' },
      { body: { orderId, customerId, amount: '1.005', currency: 'USD' }, status: 400, code: 'VALIDATION_ERROR' },
      { body: { orderId, customerId, amount: 'ten', currency: 'USD' }, status: 400, code: 'VALIDATION_ERROR' },
      { body: { orderId, customerId, amount: true, currency: 'USD' }, status: 400, code: 'VALIDATION_ERROR' },
      { body: { orderId: 42, customerId, amount: '1.00', currency: 'USD' }, status: 400, code: 'VALIDATION_ERROR' },
      { body: { orderId, customerId, amount: '1.00', currency: 'XXX' }, status: 400, code: 'VALIDATION_ERROR' },
      { body: { orderId, customerId, amount: '1.00' }, status: 400, code: 'VALIDATION_ERROR' },
      { body: { orderId: '', customerId, amount: '1.00', currency: 'USD' }, status: 400, code: 'VALIDATION_ERROR' },
      { body: { orderId: 'x'.repeat(101), customerId, amount: '1.00', currency: 'USD' }, status: 400, code: 'VALIDATION_ERROR' },
      // PostgreSQL cannot store NUL in text: a client's NUL is its mistake (400), not a 500.
      { body: { orderId: 'bad\u0000order', customerId, amount: '1.00', currency: 'USD' }, status: 400, code: 'VALIDATION_ERROR' },
      { body: '{"orderId": "o", "amount":', status: 400, code: 'MALFORMED_JSON', headers: { 'content-type': 'application/json' } },
      { body: { orderId, customerId, amount: '1.00', currency: 'USD', padding: 'x'.repeat(70 * 1024) }, status: 413, code: 'PAYLOAD_TOO_LARGE' },
      { body: '<try/>', status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', headers: { 'content-type': 'application/xml' } },
    ];
    for (const { body, status, code, headers } of cases) {
      const response = await call('POST', '/payments/try', { body, headers });
      expect(response.status, JSON.stringify(body).slice(0, 80)).toBe(status);
      expect(response.body.error.code).toBe(code);
    }
    const badOpen = [
      { customerId: `c-${randomUUID()}`, balance: '-5.00', currency: 'USD' },
      { customerId: `c-${randomUUID()}`, balance: '1.234', currency: 'USD' },
      { customerId: `c-${randomUUID()}`, balance: '1.00', currency: 'usd' },
      { customerId: `c-\u0000-${randomUUID()}`, balance: '1.00', currency: 'USD' },
    ];
    for (const body of badOpen) expect((await call('POST', '/accounts', { body })).status).toBe(400);
    expect((await call('POST', '/payments/confirm/' + randomUUID(), { body: { paymentMethod: '' } })).status).toBe(400);
    expect((await call('POST', '/payments/confirm/' + randomUUID(), { body: { paymentMethod: 'CA\u0000RD' } })).status).toBe(400);
    expect((await call('POST', `/payments/${randomUUID()}/refunds`, { body: { amount: '0' } })).status).toBe(400);
    expect((await call('POST', `/payments/${randomUUID()}/refunds`, { body: { reason: 'bad\u0000reason' } })).status).toBe(400);
    expect((await call('GET', '/payments?limit=0')).status).toBe(400);
    expect((await call('GET', '/payments?orderId=bad%00order')).status).toBe(400);
    expect((await call('POST', '/payments/try', { body: { orderId, customerId, amount: '1.00', currency: 'USD' }, key: 'x'.repeat(300) })).status).toBe(400);

    expect(await account(customerId)).toMatchObject({ balance: '10.00', held: '0.00' });
    const after = {
      outbox: (await service.db.selectFrom('outbox_events').select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow()).n,
      reservations: (await service.db.selectFrom('payment_reservations').select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow()).n,
    };
    expect(after).toEqual(before);
  });

  it('publishes the payment routes in the OpenAPI document', async () => {
    const response = await service.app.inject({ method: 'GET', url: '/openapi.json' });
    const spec = response.json<{ paths: Record<string, Record<string, { tags?: string[]; responses: Record<string, unknown> }>> }>();
    expect(Object.keys(spec.paths)).toEqual(
      expect.arrayContaining(['/accounts', '/accounts/{customerId}', '/payments/try', '/payments/confirm/{reservationId}', '/payments/cancel/{reservationId}', '/payments/cancel-by-order/{orderId}', '/payments/{paymentId}/refunds', '/payments/refund-by-order/{orderId}', '/payments', '/payments/{paymentId}']),
    );
    expect(Object.keys(spec.paths['/payments/try']?.post?.responses ?? {})).toEqual(expect.arrayContaining(['201', '401', '402', '409', '422']));
  });
});
