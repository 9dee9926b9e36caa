/**
 * The payment participant under concurrent load, over real HTTP against the real PostgreSQL:
 * money is never held twice, and after a random storm of tries, confirms, cancels, expiries and
 * refunds every account still balances and every state change left exactly one outbox row.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expirePaymentReservations } from '../../services/payment/ledger';
import { formatMinor } from '../../lib/money';
import { startTestPaymentService, type TestPaymentService } from '../helpers/payment-service';
import { seededRandom } from '../helpers/random';

let service: TestPaymentService;

beforeAll(async () => {
  service = await startTestPaymentService({ RESERVATION_SWEEP_INTERVAL_MS: '3600000' });
});
afterAll(() => service.close());

interface Answer {
  status: number;
  body: {
    error?: { code: string };
    reservationId?: string;
    paymentId?: string;
    balance?: string;
    held?: string;
    available?: string;
  };
}

async function post(path: string, body?: unknown): Promise<Answer> {
  const response = await fetch(`${service.url}${path}`, {
    method: 'POST',
    headers: { ...service.authFor(path), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, body: (await response.json()) as Answer['body'] };
}

async function openAccount(balance: string): Promise<string> {
  const customerId = `cust-${randomUUID()}`;
  expect((await post('/accounts', { customerId, balance, currency: 'USD' })).status).toBe(201);
  return customerId;
}

const count = async (query: Promise<{ n: number } | undefined>) => (await query)?.n ?? 0;

describe('payment holds under concurrency', () => {
  it('200 concurrent tries of 1.00 against 50.00 hold exactly 50.00; the account never breaks its constraints', async () => {
    const customerId = await openAccount('50.00');
    const samples: Array<{ balance_minor: number; held_minor: number }> = [];
    let done = false;
    // Watches the committed row throughout the storm.
    const watcher = (async () => {
      while (!done) {
        samples.push(await service.db.selectFrom('customer_accounts').select(['balance_minor', 'held_minor']).where('customer_id', '=', customerId).executeTakeFirstOrThrow());
      }
    })();

    const orders = Array.from({ length: 200 }, (_, i) => `storm-${i}-${randomUUID()}`);
    const answers = await Promise.all(orders.map((orderId) => post('/payments/try', { orderId, customerId, amount: '1.00', currency: 'USD' })));
    done = true;
    await watcher;

    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(50);
    expect(statuses.filter((s) => s === 402)).toHaveLength(150);
    expect(answers.filter((a) => a.status === 402).every((a) => a.body.error?.code === 'INSUFFICIENT_FUNDS')).toBe(true);

    const account = await service.db.selectFrom('customer_accounts').selectAll().where('customer_id', '=', customerId).executeTakeFirstOrThrow();
    expect(account).toMatchObject({ balance_minor: 5000, held_minor: 5000 });
    expect(samples.length).toBeGreaterThan(0);
    for (const sample of samples) {
      expect(sample.balance_minor).toBe(5000);
      expect(sample.held_minor).toBeGreaterThanOrEqual(0);
      expect(sample.held_minor).toBeLessThanOrEqual(5000);
    }

    const reservations = await service.db.selectFrom('payment_reservations').select(['amount_minor', 'status']).where('customer_id', '=', customerId).execute();
    expect(reservations).toHaveLength(50);
    expect(reservations.every((r) => r.status === 'RESERVED' && r.amount_minor === 100)).toBe(true);
    const events = await service.db
      .selectFrom('outbox_events')
      .select(['event_type', sql<number>`count(*)::int`.as('n')])
      .where('aggregate_id', 'in', orders)
      .groupBy('event_type')
      .execute();
    expect(Object.fromEntries(events.map((e) => [e.event_type, e.n]))).toEqual({ PAYMENT_RESERVED: 50, PAYMENT_FAILED: 150 });
  });

  it('after a random storm of try, confirm, cancel, expiry and refund, every account balances and every change has one outbox row', async () => {
    const seed = Number(process.env.OMS_STORM_SEED ?? Date.now() % 1_000_000);
    const random = seededRandom(seed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const deposited = new Map<string, number>();
    for (const balance of [10_000, 5_000, 2_500, 1_000]) deposited.set(await openAccount(formatMinor(balance)), balance);
    const customers = [...deposited.keys()];
    const orderIds: string[] = [];
    const failures: string[] = [];
    const expectStatus = (what: string, answer: Answer, allowed: number[]) => {
      if (!allowed.includes(answer.status)) failures.push(`${what}: ${answer.status} ${JSON.stringify(answer.body)}`);
    };

    const tryRound = async (n: number) => {
      const round = Array.from({ length: n }, () => ({
        orderId: `mix-${randomUUID()}`,
        customerId: pick(customers),
        amount: formatMinor(1 + Math.floor(random() * 2_500)),
      }));
      orderIds.push(...round.map((o) => o.orderId));
      const answers = await Promise.all(
        round.map(async (order) => {
          const body = { ...order, currency: 'USD' };
          // Some tries are sent twice at once, as a retrying caller would.
          const [first, second] = await Promise.all([post('/payments/try', body), random() < 0.2 ? post('/payments/try', body) : undefined]);
          expectStatus('try', first, [201, 402]);
          if (second) expectStatus('retried try', second, [201, 402]);
          return { ...order, reservationId: first.status === 201 ? first.body.reservationId : second?.status === 201 ? second.body.reservationId : undefined };
        }),
      );
      return answers.filter((a): a is typeof a & { reservationId: string } => a.reservationId !== undefined);
    };

    const settleRound = async (held: Array<{ orderId: string; reservationId: string }>) => {
      const confirmed: string[] = [];
      await Promise.all(
        held.map(async ({ orderId, reservationId }) => {
          const roll = random();
          const confirm = () => post(`/payments/confirm/${reservationId}`, { paymentMethod: 'ACCOUNT_BALANCE' });
          if (roll < 0.35) {
            const [a, b] = await Promise.all([confirm(), random() < 0.3 ? confirm() : undefined]);
            expectStatus('confirm', a, [200]);
            if (b) expectStatus('repeated confirm', b, [200]);
            confirmed.push(orderId);
          } else if (roll < 0.5) {
            // Confirm and cancel race: exactly one of them wins.
            const [c, x] = await Promise.all([confirm(), post(`/payments/cancel/${reservationId}`)]);
            expectStatus('racing confirm', c, [200, 409]);
            expectStatus('racing cancel', x, [200, 409]);
            if ((c.status === 200) === (x.status === 200)) failures.push(`confirm ${c.status} and cancel ${x.status} both won or both lost`);
            if (c.status === 200) confirmed.push(orderId);
          } else if (roll < 0.65) {
            expectStatus('cancel', await post(`/payments/cancel/${reservationId}`), [200]);
          } else if (roll < 0.75) {
            expectStatus('cancel by order', await post(`/payments/cancel-by-order/${orderId}`), [200]);
          } else if (roll < 0.9) {
            await service.db.updateTable('payment_reservations').set({ expires_at: sql`now() - interval '1 second'` }).where('id', '=', reservationId).execute();
          }
          // Otherwise the hold stays open.
        }),
      );
      return confirmed;
    };

    const refundRound = async (paidOrders: string[]) => {
      await Promise.all(
        paidOrders.map(async (orderId) => {
          const roll = random();
          if (roll < 0.3) {
            const answers = await Promise.all([1, 2].map(() => post(`/payments/refund-by-order/${orderId}`, { reason: 'order cancelled' })));
            for (const a of answers) expectStatus('refund by order', a, [200, 201]);
          } else if (roll < 0.6) {
            const payment = await service.db.selectFrom('payments').select('id').where('order_id', '=', orderId).executeTakeFirstOrThrow();
            const answers = await Promise.all([
              post(`/payments/${payment.id}/refunds`, { amount: '0.50', reason: 'partial' }),
              post(`/payments/refund-by-order/${orderId}`),
            ]);
            expectStatus('partial refund', answers[0], [201, 409]);
            expectStatus('refund by order', answers[1], [200, 201]);
          }
        }),
      );
    };

    for (let round = 0; round < 3; round++) {
      const held = await tryRound(60);
      // The sweeper runs while holds are being settled: SKIP LOCKED keeps them apart.
      const [paid] = await Promise.all([settleRound(held), expirePaymentReservations(service.db)]);
      await Promise.all([refundRound(paid), expirePaymentReservations(service.db)]);
    }
    await expirePaymentReservations(service.db);
    expect(failures, `seed ${seed}`).toEqual([]);

    for (const [customerId, depositedMinor] of deposited) {
      const account = await service.db.selectFrom('customer_accounts').selectAll().where('customer_id', '=', customerId).executeTakeFirstOrThrow();
      const captured = await count(service.db.selectFrom('payments').select(sql<number>`coalesce(sum(amount_minor), 0)::int`.as('n')).where('customer_id', '=', customerId).executeTakeFirst());
      const refunded = await count(
        service.db
          .selectFrom('refunds')
          .innerJoin('payments', 'payments.id', 'refunds.payment_id')
          .select(sql<number>`coalesce(sum(refunds.amount_minor), 0)::int`.as('n'))
          .where('payments.customer_id', '=', customerId)
          .executeTakeFirst(),
      );
      const openHolds = await count(
        service.db.selectFrom('payment_reservations').select(sql<number>`coalesce(sum(amount_minor), 0)::int`.as('n')).where('customer_id', '=', customerId).where('status', '=', 'RESERVED').executeTakeFirst(),
      );
      const available = account.balance_minor - account.held_minor;
      expect(available + account.held_minor + captured - refunded, `${customerId}, seed ${seed}`).toBe(depositedMinor);
      expect(account.held_minor).toBe(openHolds);
      expect(available).toBeGreaterThanOrEqual(0);
    }

    // Each state change wrote exactly one event: one per reservation made, payment captured,
    // hold released (cancelled or expired) and refund recorded; PAYMENT_FAILED once per refused try.
    const eventCounts = Object.fromEntries(
      (
        await service.db
          .selectFrom('outbox_events')
          .select(['event_type', sql<number>`count(*)::int`.as('n')])
          .where('aggregate_id', 'in', orderIds)
          .groupBy('event_type')
          .execute()
      ).map((e) => [e.event_type, e.n]),
    );
    const reservationCounts = Object.fromEntries(
      (
        await service.db
          .selectFrom('payment_reservations')
          .select(['status', sql<number>`count(*)::int`.as('n')])
          .where('order_id', 'in', orderIds)
          .groupBy('status')
          .execute()
      ).map((r) => [r.status, r.n]),
    );
    const reservationsMade = Object.values(reservationCounts).reduce((a, b) => a + b, 0);
    const paymentsMade = await count(service.db.selectFrom('payments').select(sql<number>`count(*)::int`.as('n')).where('order_id', 'in', orderIds).executeTakeFirst());
    const refundsMade = await count(
      service.db.selectFrom('refunds').innerJoin('payments', 'payments.id', 'refunds.payment_id').select(sql<number>`count(*)::int`.as('n')).where('payments.order_id', 'in', orderIds).executeTakeFirst(),
    );
    expect(reservationsMade).toBeGreaterThan(0);
    expect(paymentsMade).toBeGreaterThan(0);
    expect(refundsMade).toBeGreaterThan(0);
    expect(eventCounts.PAYMENT_RESERVED ?? 0).toBe(reservationsMade);
    expect(eventCounts.PAYMENT_COMPLETED ?? 0).toBe(paymentsMade);
    expect(reservationCounts.CONFIRMED ?? 0).toBe(paymentsMade);
    expect(eventCounts.PAYMENT_CANCELLED ?? 0).toBe((reservationCounts.CANCELLED ?? 0) + (reservationCounts.EXPIRED ?? 0));
    expect(eventCounts.PAYMENT_REFUNDED ?? 0).toBe(refundsMade);
  });
});
