import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expireStockReservations } from '../../services/product/stock-tcc';
import { createTestProduct, createTestProductService, outboxEventTypes, stockOf, type TestProductService } from '../helpers/product-service';

/** Far longer than any test: a reservation expires only when a test moves its expiry into the past. */
const TTL_SECONDS = 3600;

/** Moves time for one order's reservations: their expiry is now a second ago, by the database clock. */
async function backdate(service: TestProductService, orderId: string): Promise<void> {
  const moved = await service.db
    .updateTable('stock_reservations')
    .set({ expires_at: sql<Date>`now() - interval '1 second'` })
    .where('order_id', '=', orderId)
    .executeTakeFirst();
  expect(Number(moved.numUpdatedRows)).toBeGreaterThan(0);
}

// Reservations nobody confirms or cancels expire: the units come back and confirm is refused,
// whether the sweeper got there first or the confirm finds the expiry itself.
describe('product service: stock reservation expiry', () => {
  let service: TestProductService;

  beforeAll(async () => {
    // No interval sweeps in this service: the tests call the sweeper function themselves.
    service = await createTestProductService({ overrides: { RESERVATION_TTL_SECONDS: String(TTL_SECONDS), RESERVATION_SWEEP_INTERVAL_MS: '3600000' } });
  });
  afterAll(() => service.close());

  const post = (url: string, payload?: Record<string, unknown>) => service.app.inject({ method: 'POST', url, headers: service.authFor(url), ...(payload ? { payload } : {}) });
  const statusesOf = async (orderId: string) =>
    (await service.db.selectFrom('stock_reservations').select('status').where('order_id', '=', orderId).execute()).map((row) => row.status);

  it('the sweeper expires a reservation past its TTL: units freed, one STOCK_RELEASED (EXPIRED), confirm refused', async () => {
    const a = await createTestProduct(service, { stockQuantity: 10 });
    const b = await createTestProduct(service, { stockQuantity: 10 });
    const orderId = randomUUID();
    expect(
      (
        await post('/stock/try', {
          orderId,
          items: [
            { productId: a, quantity: 4 },
            { productId: b, quantity: 1 },
          ],
        })
      ).statusCode,
    ).toBe(201);
    // Not yet due: the sweeper leaves it alone.
    expect(await expireStockReservations(service.db)).toBe(0);
    expect(await stockOf(service.db, a)).toEqual({ stock: 10, reserved: 4, available: 6 });

    await backdate(service, orderId);
    expect(await expireStockReservations(service.db)).toBe(1);
    expect(await stockOf(service.db, a)).toEqual({ stock: 10, reserved: 0, available: 10 });
    expect(await stockOf(service.db, b)).toEqual({ stock: 10, reserved: 0, available: 10 });
    expect(await statusesOf(orderId)).toEqual(['EXPIRED', 'EXPIRED']);
    expect(await expireStockReservations(service.db)).toBe(0);

    const confirm = await post(`/stock/confirm/${orderId}`);
    expect(confirm.statusCode).toBe(409);
    expect(confirm.json()).toMatchObject({ error: { code: 'RESERVATION_EXPIRED' } });
    // Cancelling what expired is a no-op that succeeds (a saga's compensation must not get stuck).
    const cancel = await post(`/stock/cancel/${orderId}`);
    expect(cancel.statusCode).toBe(200);
    expect(cancel.json<{ releasedItems: unknown[] }>().releasedItems).toHaveLength(2);
    const retry = await post('/stock/try', {
      orderId,
      items: [
        { productId: a, quantity: 4 },
        { productId: b, quantity: 1 },
      ],
    });
    expect(retry.json()).toMatchObject({ error: { code: 'RESERVATION_EXPIRED' } });

    expect(await stockOf(service.db, a)).toEqual({ stock: 10, reserved: 0, available: 10 });
    expect(await outboxEventTypes(service.db, orderId)).toEqual(['STOCK_RESERVED', 'STOCK_RELEASED']);
    const released = await service.db.selectFrom('outbox_events').select('payload').where('aggregate_id', '=', orderId).where('event_type', '=', 'STOCK_RELEASED').executeTakeFirstOrThrow();
    expect(released.payload).toMatchObject({ payload: { orderId, reason: 'EXPIRED' } });
  });

  it('a confirm that finds its reservation past expiry expires it itself (committed) and is refused', async () => {
    const a = await createTestProduct(service, { stockQuantity: 5 });
    const orderId = randomUUID();
    await post('/stock/try', { orderId, items: [{ productId: a, quantity: 5 }] });
    expect(await stockOf(service.db, a)).toEqual({ stock: 5, reserved: 5, available: 0 });

    await backdate(service, orderId);
    const confirm = await post(`/stock/confirm/${orderId}`);
    expect(confirm.statusCode).toBe(409);
    expect(confirm.json()).toMatchObject({ error: { code: 'RESERVATION_EXPIRED' } });
    expect(await stockOf(service.db, a)).toEqual({ stock: 5, reserved: 0, available: 5 });
    expect(await statusesOf(orderId)).toEqual(['EXPIRED']);
    expect(await outboxEventTypes(service.db, orderId)).toEqual(['STOCK_RESERVED', 'STOCK_RELEASED']);
    // Nothing is left for the sweeper, and a second confirm gives the same answer without another event.
    expect(await expireStockReservations(service.db)).toBe(0);
    expect((await post(`/stock/confirm/${orderId}`)).json()).toMatchObject({ error: { code: 'RESERVATION_EXPIRED' } });
    expect(await outboxEventTypes(service.db, orderId)).toHaveLength(2);

    // The freed units can be reserved by someone else.
    const other = randomUUID();
    expect((await post('/stock/try', { orderId: other, items: [{ productId: a, quantity: 5 }] })).statusCode).toBe(201);
    // Released again so that later tests' sweeps find only their own reservations.
    expect((await post(`/stock/cancel/${other}`)).statusCode).toBe(200);
  });

  it('a cancel of a reservation past expiry that nobody swept releases it as CANCELLED', async () => {
    const a = await createTestProduct(service, { stockQuantity: 3 });
    const orderId = randomUUID();
    await post('/stock/try', { orderId, items: [{ productId: a, quantity: 3 }] });
    await backdate(service, orderId);
    const cancel = await post(`/stock/cancel/${orderId}`);
    expect(cancel.json()).toEqual({ orderId, releasedItems: [{ productId: a, quantity: 3 }], status: 'released' });
    expect(await statusesOf(orderId)).toEqual(['CANCELLED']);
    expect(await stockOf(service.db, a)).toEqual({ stock: 3, reserved: 0, available: 3 });
    expect(await expireStockReservations(service.db)).toBe(0);
  });

  it('the sweeper skips an order another transaction holds (SKIP LOCKED) and takes it on the next sweep', async () => {
    const a = await createTestProduct(service, { stockQuantity: 2 });
    const orderId = randomUUID();
    await post('/stock/try', { orderId, items: [{ productId: a, quantity: 2 }] });
    await backdate(service, orderId);

    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    // Another transaction holds the order's barrier row, as a confirm or cancel in progress would.
    const holder = service.db.transaction().execute(async (trx) => {
      await trx.selectFrom('tcc_barriers').select('transaction_id').where('transaction_id', '=', orderId).forUpdate().execute();
      locked();
      await held;
    });
    await isLocked;
    try {
      expect(await expireStockReservations(service.db)).toBe(0);
      expect(await stockOf(service.db, a)).toEqual({ stock: 2, reserved: 2, available: 0 });
    } finally {
      release();
      await holder;
    }
    expect(await expireStockReservations(service.db)).toBe(1);
    expect(await stockOf(service.db, a)).toEqual({ stock: 2, reserved: 0, available: 2 });
  });
});

describe('product service: the reservation sweeper runs on its interval', () => {
  let service: TestProductService;

  beforeAll(async () => {
    service = await createTestProductService({ overrides: { RESERVATION_TTL_SECONDS: String(TTL_SECONDS), RESERVATION_SWEEP_INTERVAL_MS: '200' } });
  });
  afterAll(() => service.close());

  it('frees an unconfirmed reservation without anyone calling it, and counts it in /metrics', async () => {
    const a = await createTestProduct(service, { stockQuantity: 7 });
    const orderId = randomUUID();
    await service.app.inject({ method: 'POST', url: '/stock/try', headers: service.worker, payload: { orderId, items: [{ productId: a, quantity: 7 }] } });
    expect((await stockOf(service.db, a)).reserved).toBe(7);
    await backdate(service, orderId);

    const deadline = Date.now() + 10_000;
    while ((await stockOf(service.db, a)).reserved !== 0 && Date.now() < deadline) await sleep(100);
    expect(await stockOf(service.db, a)).toEqual({ stock: 7, reserved: 0, available: 7 });
    expect(await outboxEventTypes(service.db, orderId)).toEqual(['STOCK_RESERVED', 'STOCK_RELEASED']);
    const metrics = await service.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/oms_tcc_operations_total\{[^}]*operation="expire",outcome="applied"[^}]*\} 1/);
    expect(metrics.body).toMatch(/oms_tcc_timeout_total\{[^}]*participant="stock"[^}]*\} 1/);
    expect(metrics.body).toMatch(/oms_tcc_completed_total\{[^}]*participant="stock",outcome="expired"[^}]*\} 1/);
  });
});
