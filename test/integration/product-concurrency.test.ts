import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestProduct, createTestProductService, stockOf, type TestProductService } from '../helpers/product-service';
import { seededRandom } from '../helpers/random';

// Under concurrent load the stock participant never oversells, never loses or invents a unit, and
// writes exactly one outbox event per state change.
describe('product service: stock under concurrency', () => {
  let service: TestProductService;
  // Reservations that expire within the test, for the mix that includes expiry. The other tests
  // use the default lifetime: on a busy machine 200 tries can take longer than 3 s, and a
  // reservation swept before the check would be counted against the tries.
  let expiring: TestProductService;

  beforeAll(async () => {
    [service, expiring] = await Promise.all([
      createTestProductService(),
      createTestProductService({ overrides: { RESERVATION_TTL_SECONDS: '3', RESERVATION_SWEEP_INTERVAL_MS: '250' } }),
    ]);
  });
  afterAll(() => Promise.all([service?.close(), expiring?.close()]));

  /**
   * One TCC call as the saga's activities make it: a 503 (no connection or lock within the
   * service's bounds, which 200 calls at once on one product reach on a busy machine) is not an
   * answer, and the call is sent again; every operation is idempotent per order.
   */
  async function postTo(to: TestProductService, url: string, payload?: Record<string, unknown>) {
    for (let attempt = 1; ; attempt += 1) {
      const response = await to.app.inject({ method: 'POST', url, headers: to.authFor(url), ...(payload ? { payload } : {}) });
      if (response.statusCode !== 503 || attempt === 20) return response;
      await sleep(50 * attempt);
    }
  }
  const post = (url: string, payload?: Record<string, unknown>) => postTo(service, url, payload);

  /** For every order: how many events of each kind its outbox rows say happened. */
  async function eventCountsByOrder(of: TestProductService = service): Promise<Map<string, Record<string, number>>> {
    const rows = await of.db
      .selectFrom('outbox_events')
      .select(['aggregate_id', 'event_type', sql<string | null>`payload -> 'payload' ->> 'reason'`.as('reason'), (eb) => eb.fn.countAll<string>().as('n')])
      .where('aggregate_type', '=', 'STOCK_RESERVATION')
      .groupBy(['aggregate_id', 'event_type', sql`payload -> 'payload' ->> 'reason'`])
      .execute();
    const counts = new Map<string, Record<string, number>>();
    for (const row of rows) {
      const kind = row.event_type === 'STOCK_RELEASED' ? `RELEASED_${row.reason}` : row.event_type;
      counts.set(row.aggregate_id, { ...counts.get(row.aggregate_id), [kind]: Number(row.n) });
    }
    return counts;
  }

  it('200 concurrent tries for one unit each against 50 units reserve exactly 50, and stock never goes negative', async () => {
    const productId = await createTestProduct(service, { stockQuantity: 50 });
    const orderIds = Array.from({ length: 200 }, () => randomUUID());

    const responses = await Promise.all(orderIds.map((orderId) => post('/stock/try', { orderId, items: [{ productId, quantity: 1 }] })));

    const statuses = responses.map((response) => response.statusCode);
    expect(statuses.filter((status) => status === 201)).toHaveLength(50);
    expect(statuses.filter((status) => status === 409)).toHaveLength(150);
    for (const response of responses.filter((r) => r.statusCode === 409)) {
      expect(response.json()).toMatchObject({ error: { code: 'INSUFFICIENT_STOCK', details: { productId, requested: 1, available: 0 } } });
    }
    expect(await stockOf(service.db, productId)).toEqual({ stock: 50, reserved: 50, available: 0 });
    const reserved = await service.db
      .selectFrom('stock_reservations')
      .select([(eb) => eb.fn.countAll<string>().as('rows'), (eb) => eb.fn.sum<string>('quantity').as('units')])
      .where('product_id', '=', productId)
      .where('status', '=', 'RESERVED')
      .executeTakeFirstOrThrow();
    expect({ rows: Number(reserved.rows), units: Number(reserved.units) }).toEqual({ rows: 50, units: 50 });

    // Exactly one event per attempt: 50 reservations and 150 recorded refusals.
    const counts = await eventCountsByOrder();
    const winners = orderIds.filter((_, index) => statuses[index] === 201);
    const losers = orderIds.filter((_, index) => statuses[index] === 409);
    for (const orderId of winners) expect(counts.get(orderId)).toEqual({ STOCK_RESERVED: 1 });
    for (const orderId of losers) expect(counts.get(orderId)).toEqual({ STOCK_RESERVATION_FAILED: 1 });

    // Clean up for the next test: release them all.
    await Promise.all(winners.map((orderId) => post(`/stock/cancel/${orderId}`)));
    expect(await stockOf(service.db, productId)).toEqual({ stock: 50, reserved: 0, available: 50 });
  });

  it('a try racing its own cancel either reserves and is released, or is refused; nothing stays reserved', async () => {
    const productId = await createTestProduct(service, { stockQuantity: 1_000 });
    const outcomes = await Promise.all(
      Array.from({ length: 60 }, async (_, index) => {
        const orderId = randomUUID();
        // Half the cancels are sent first, half a few milliseconds after their try, so both orders of arrival occur.
        const tryCall = () => post('/stock/try', { orderId, items: [{ productId, quantity: 2 }] });
        const cancelCall = () => post(`/stock/cancel/${orderId}`);
        const [tried, cancelled] =
          index % 2 === 0
            ? await Promise.all([sleep(index % 7).then(tryCall), cancelCall()])
            : await Promise.all([tryCall(), sleep(index % 7).then(cancelCall)]);
        return { orderId, tried, cancelled };
      }),
    );
    for (const { orderId, tried, cancelled } of outcomes) {
      expect(cancelled.statusCode).toBe(200);
      const released = cancelled.json<{ releasedItems: unknown[] }>().releasedItems;
      if (tried.statusCode === 201) {
        // The try won: the cancel that followed released its units.
        expect(released).toEqual([{ productId, quantity: 2 }]);
      } else {
        expect(tried.statusCode).toBe(409);
        expect(tried.json()).toMatchObject({ error: { code: 'TRY_AFTER_CANCEL' } });
        expect(released).toEqual([]);
      }
      const rows = await service.db.selectFrom('stock_reservations').select('status').where('order_id', '=', orderId).execute();
      expect(rows.every((row) => row.status === 'CANCELLED')).toBe(true);
    }
    expect(await stockOf(service.db, productId)).toEqual({ stock: 1_000, reserved: 0, available: 1_000 });
  });

  it('conservation holds after a random concurrent mix of try, confirm, cancel, expiry and restock, with one event per change', async () => {
    const random = seededRandom(20_261_125);
    const pick = <T>(values: readonly T[]) => values[Math.floor(random() * values.length)]!;
    const INITIAL = 25;
    const productIds = await Promise.all(Array.from({ length: 5 }, () => createTestProduct(expiring, { stockQuantity: INITIAL })));

    const orders = Array.from({ length: 120 }, () => {
      const count = 1 + Math.floor(random() * 3);
      const chosen = [...productIds].sort(() => random() - 0.5).slice(0, count);
      return {
        orderId: randomUUID(),
        items: chosen.map((productId) => ({ productId, quantity: 1 + Math.floor(random() * 4) })),
        plan: pick(['confirm', 'confirm', 'cancel', 'expire', 'restock', 'cancel-early'] as const),
      };
    });

    const unexpected: string[] = [];
    const expectStatus = (label: string, response: { statusCode: number; body: string }, allowed: number[]) => {
      if (!allowed.includes(response.statusCode)) unexpected.push(`${label}: ${response.statusCode} ${response.body}`);
    };

    // Every order runs its plan concurrently with all the others; some steps are sent twice at
    // once, as a retrying caller would.
    await Promise.all(
      orders.map(async ({ orderId, items, plan }) => {
        const tryOnce = () => postTo(expiring, '/stock/try', { orderId, items });
        if (plan === 'cancel-early') {
          const [cancelled, tried] = await Promise.all([postTo(expiring, `/stock/cancel/${orderId}`), tryOnce()]);
          expectStatus('cancel-early cancel', cancelled, [200]);
          expectStatus('cancel-early try', tried, [201, 409]);
          if (tried.statusCode === 201) expectStatus('cancel after the try', await postTo(expiring, `/stock/cancel/${orderId}`), [200]);
          return;
        }
        const tries = await Promise.all([tryOnce(), random() < 0.3 ? tryOnce() : undefined]);
        for (const tried of tries) if (tried) expectStatus('try', tried, [200, 201, 409]);
        if (!tries.some((tried) => tried && tried.statusCode < 300)) return;
        // Confirms may lose to expiry under load (409 RESERVATION_EXPIRED): that is a legal outcome.
        if (plan === 'confirm' || plan === 'restock') {
          const confirms = await Promise.all([postTo(expiring, `/stock/confirm/${orderId}`), random() < 0.3 ? postTo(expiring, `/stock/confirm/${orderId}`) : undefined]);
          for (const confirmed of confirms) if (confirmed) expectStatus('confirm', confirmed, [200, 409]);
          if (plan === 'restock' && confirms[0].statusCode === 200) {
            const restocks = await Promise.all([postTo(expiring, `/stock/restock/${orderId}`), postTo(expiring, `/stock/restock/${orderId}`)]);
            for (const restocked of restocks) expectStatus('restock', restocked, [200]);
          }
        } else if (plan === 'cancel') {
          const cancels = await Promise.all([postTo(expiring, `/stock/cancel/${orderId}`), random() < 0.3 ? postTo(expiring, `/stock/cancel/${orderId}`) : undefined]);
          for (const cancelled of cancels) if (cancelled) expectStatus('cancel', cancelled, [200]);
        }
        // 'expire': left for the sweeper.
      }),
    );
    expect(unexpected).toEqual([]);

    async function checkConservation() {
      const products = await expiring.db.selectFrom('products').select(['id', 'stock_quantity', 'reserved_quantity']).where('id', 'in', productIds).execute();
      const sums = await expiring.db
        .selectFrom('stock_reservations')
        .select([
          'product_id',
          sql<string>`coalesce(sum(quantity) filter (where status = 'RESERVED'), 0)`.as('reserved'),
          sql<string>`coalesce(sum(quantity) filter (where status = 'CONFIRMED'), 0)`.as('confirmed'),
          sql<string>`coalesce(sum(quantity) filter (where status = 'CONFIRMED' and restocked_at is not null), 0)`.as('restocked'),
        ])
        .where('product_id', 'in', productIds)
        .groupBy('product_id')
        .execute();
      for (const product of products) {
        const sum = sums.find((row) => row.product_id === product.id);
        const reserved = Number(sum?.reserved ?? 0);
        const sold = Number(sum?.confirmed ?? 0); // every unit ever confirmed, restocked ones included
        const restocked = Number(sum?.restocked ?? 0);
        const available = product.stock_quantity - product.reserved_quantity;
        expect(product.reserved_quantity).toBe(reserved);
        expect(available).toBeGreaterThanOrEqual(0);
        expect(INITIAL + restocked).toBe(available + product.reserved_quantity + sold);
        // The same, as "units on hand = initial stock minus units that stayed sold".
        expect(product.stock_quantity).toBe(INITIAL - (sold - restocked));
      }
    }

    await checkConservation();
    // Let everything unconfirmed expire, then check again: nothing may stay reserved.
    const deadline = Date.now() + 15_000;
    const stillReserved = () =>
      expiring.db.selectFrom('stock_reservations').select('id').where('status', '=', 'RESERVED').where('product_id', 'in', productIds).limit(1).execute();
    while ((await stillReserved()).length > 0 && Date.now() < deadline) await sleep(250);
    expect(await stillReserved()).toEqual([]);
    await checkConservation();

    // Exactly one event per state change, for every order.
    const counts = await eventCountsByOrder(expiring);
    const reservations = await expiring.db
      .selectFrom('stock_reservations')
      .select(['order_id', 'status', 'restocked_at'])
      .where('order_id', 'in', orders.map((order) => order.orderId))
      .execute();
    const seen = new Set<string>();
    const kinds = { RESERVED: 0, CONFIRMED: 0, CANCELLED: 0, EXPIRED: 0, RESTOCKED: 0 };
    for (const row of reservations) {
      if (seen.has(row.order_id)) continue;
      seen.add(row.order_id);
      const expected: Record<string, number> = { STOCK_RESERVED: 1 };
      if (row.status === 'CONFIRMED') expected.STOCK_CONFIRMED = 1;
      if (row.status === 'CANCELLED') expected.RELEASED_CANCELLED = 1;
      if (row.status === 'EXPIRED') expected.RELEASED_EXPIRED = 1;
      if (row.restocked_at) expected.RELEASED_RESTOCKED = 1;
      const actual = { ...counts.get(row.order_id) };
      delete actual.STOCK_RESERVATION_FAILED; // refused attempts before the reservation, one per refusal
      expect(actual, row.order_id).toEqual(expected);
      kinds[row.status] += 1;
      if (row.restocked_at) kinds.RESTOCKED += 1;
    }
    // Orders that never reserved anything have no event but refusals.
    for (const { orderId } of orders.filter((order) => !seen.has(order.orderId))) {
      expect(Object.keys(counts.get(orderId) ?? {}).filter((kind) => kind !== 'STOCK_RESERVATION_FAILED'), orderId).toEqual([]);
    }
    // The mix really exercised every path.
    expect(kinds.CONFIRMED).toBeGreaterThan(0);
    expect(kinds.CANCELLED).toBeGreaterThan(0);
    expect(kinds.EXPIRED).toBeGreaterThan(0);
    expect(kinds.RESTOCKED).toBeGreaterThan(0);
    expect(seen.size).toBeLessThan(orders.length); // and some tries were refused for lack of stock
  });
});
