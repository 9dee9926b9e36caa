import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEvent } from '../../lib/events';
import { asCustomer } from '../helpers/auth';
import { createTestProduct, createTestProductService, outboxEventTypes, stockOf, type TestProductService, refuseForcedOrderReservations } from '../helpers/product-service';

// The stock TCC participant against a real PostgreSQL: every rule of try/confirm/cancel/restock,
// the barrier for a cancel that overtakes its try, and exactly one outbox row per state change.
describe('product service: stock TCC', () => {
  let service: TestProductService;

  beforeAll(async () => {
    // Long TTL and no sweeps: expiry has its own suite.
    service = await createTestProductService({ overrides: { RESERVATION_TTL_SECONDS: '900', RESERVATION_SWEEP_INTERVAL_MS: '3600000' } });
  });
  afterAll(() => service.close());

  const post = (url: string, payload?: unknown, headers: Record<string, string> = service.worker) =>
    service.app.inject({ method: 'POST', url, headers, ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) });
  const tryStock = (orderId: string, items: { productId: string; quantity: number }[]) => post('/stock/try', { orderId, items });
  const reservationsOf = (orderId: string) =>
    service.db.selectFrom('stock_reservations').select(['product_id', 'quantity', 'status', 'restocked_at']).where('order_id', '=', orderId).execute();
  const barriersOf = (orderId: string) =>
    service.db.selectFrom('tcc_barriers').select(['branch_id', 'operation', 'reason']).where('transaction_id', '=', orderId).orderBy('operation').execute();

  it('try reserves every item, a repeated try answers the same reservation, and one STOCK_RESERVED is written', async () => {
    const a = await createTestProduct(service, { stockQuantity: 10 });
    const b = await createTestProduct(service, { stockQuantity: 5 });
    const orderId = randomUUID();

    const first = await tryStock(orderId, [
      { productId: a, quantity: 3 },
      { productId: b, quantity: 5 },
    ]);
    expect(first.statusCode).toBe(201);
    const body = first.json<{ orderId: string; status: string; reservations: { reservationId: string; productId: string; quantity: number; expiresAt: string }[] }>();
    expect(body.status).toBe('reserved');
    expect(body.reservations.map((r) => [r.productId, r.quantity]).sort()).toEqual([[a, 3], [b, 5]].sort());
    expect(new Date(body.reservations[0]!.expiresAt).getTime()).toBeGreaterThan(Date.now() + 800_000);
    expect(await stockOf(service.db, a)).toEqual({ stock: 10, reserved: 3, available: 7 });
    expect(await stockOf(service.db, b)).toEqual({ stock: 5, reserved: 5, available: 0 });

    const repeat = await tryStock(orderId, [
      { productId: b, quantity: 5 },
      { productId: a, quantity: 3 },
    ]);
    expect(repeat.statusCode).toBe(200);
    expect(repeat.json()).toEqual(body);
    expect(await stockOf(service.db, a)).toEqual({ stock: 10, reserved: 3, available: 7 });

    const different = await tryStock(orderId, [{ productId: a, quantity: 4 }]);
    expect(different.statusCode).toBe(409);
    expect(different.json()).toMatchObject({ error: { code: 'TRY_CONFLICT' } });
    expect(await outboxEventTypes(service.db, orderId)).toEqual(['STOCK_RESERVED']);
    expect(await barriersOf(orderId)).toEqual([{ branch_id: 'stock', operation: 'try', reason: 'try' }]);
  });

  it('confirm deducts the stock once; a repeated confirm changes nothing; cancel after confirm is refused', async () => {
    const a = await createTestProduct(service, { stockQuantity: 10 });
    const orderId = randomUUID();
    expect((await tryStock(orderId, [{ productId: a, quantity: 4 }])).statusCode).toBe(201);

    const confirm = await post(`/stock/confirm/${orderId}`);
    expect(confirm.statusCode).toBe(200);
    expect(confirm.json()).toEqual({ orderId, items: [{ productId: a, quantity: 4 }], status: 'confirmed' });
    expect(await stockOf(service.db, a)).toEqual({ stock: 6, reserved: 0, available: 6 });

    const again = await post(`/stock/confirm/${orderId}`);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(confirm.json());
    expect(await stockOf(service.db, a)).toEqual({ stock: 6, reserved: 0, available: 6 });

    const cancel = await post(`/stock/cancel/${orderId}`);
    expect(cancel.statusCode).toBe(409);
    expect(cancel.json()).toMatchObject({ error: { code: 'RESERVATION_ALREADY_CONFIRMED' } });

    // A repeated try after the confirm answers the confirmed reservation without reserving again.
    const retry = await tryStock(orderId, [{ productId: a, quantity: 4 }]);
    expect(retry.statusCode).toBe(200);
    expect(retry.json()).toMatchObject({ status: 'confirmed' });
    expect(await stockOf(service.db, a)).toEqual({ stock: 6, reserved: 0, available: 6 });
    expect(await outboxEventTypes(service.db, orderId)).toEqual(['STOCK_RESERVED', 'STOCK_CONFIRMED']);
    expect((await barriersOf(orderId)).map((row) => row.operation)).toEqual(['confirm', 'try']);
  });

  it('cancel releases the units once; a repeated cancel changes nothing; confirm after cancel is refused', async () => {
    const a = await createTestProduct(service, { stockQuantity: 10 });
    const b = await createTestProduct(service, { stockQuantity: 10 });
    const orderId = randomUUID();
    await tryStock(orderId, [
      { productId: a, quantity: 2 },
      { productId: b, quantity: 7 },
    ]);

    const cancel = await post(`/stock/cancel/${orderId}`);
    expect(cancel.statusCode).toBe(200);
    const body = cancel.json<{ orderId: string; status: string; releasedItems: { productId: string; quantity: number }[] }>();
    expect(body.status).toBe('released');
    expect(body.releasedItems.map((item) => [item.productId, item.quantity]).sort()).toEqual([[a, 2], [b, 7]].sort());
    expect(await stockOf(service.db, a)).toEqual({ stock: 10, reserved: 0, available: 10 });
    expect(await stockOf(service.db, b)).toEqual({ stock: 10, reserved: 0, available: 10 });

    const again = await post(`/stock/cancel/${orderId}`);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(body);
    expect(await stockOf(service.db, b)).toEqual({ stock: 10, reserved: 0, available: 10 });

    const confirm = await post(`/stock/confirm/${orderId}`);
    expect(confirm.statusCode).toBe(409);
    expect(confirm.json()).toMatchObject({ error: { code: 'RESERVATION_CANCELLED' } });
    const retry = await tryStock(orderId, [
      { productId: a, quantity: 2 },
      { productId: b, quantity: 7 },
    ]);
    expect(retry.statusCode).toBe(409);
    expect(retry.json()).toMatchObject({ error: { code: 'RESERVATION_CANCELLED' } });

    expect(await stockOf(service.db, a)).toEqual({ stock: 10, reserved: 0, available: 10 });
    expect(await outboxEventTypes(service.db, orderId)).toEqual(['STOCK_RESERVED', 'STOCK_RELEASED']);
    const released = await service.db.selectFrom('outbox_events').select('payload').where('aggregate_id', '=', orderId).where('event_type', '=', 'STOCK_RELEASED').executeTakeFirstOrThrow();
    // Written by the first cancel, under that request's id.
    expect(released.payload).toMatchObject({ eventType: 'STOCK_RELEASED', aggregateType: 'STOCK_RESERVATION', correlationId: cancel.headers['x-request-id'], version: 1, payload: { reason: 'CANCELLED' } });
    expect(await reservationsOf(orderId)).toHaveLength(2);
    expect((await reservationsOf(orderId)).every((row) => row.status === 'CANCELLED')).toBe(true);
  });

  it('a cancel that arrives before its try records a barrier: the late try is refused and nothing is reserved', async () => {
    const a = await createTestProduct(service, { stockQuantity: 3 });
    const orderId = randomUUID();

    const cancel = await post(`/stock/cancel/${orderId}`);
    expect(cancel.statusCode).toBe(200);
    expect(cancel.json()).toEqual({ orderId, releasedItems: [], status: 'released' });
    expect(await barriersOf(orderId)).toEqual([
      { branch_id: 'stock', operation: 'cancel', reason: 'cancel' },
      { branch_id: 'stock', operation: 'try', reason: 'cancel' },
    ]);

    const lateTry = await tryStock(orderId, [{ productId: a, quantity: 1 }]);
    expect(lateTry.statusCode).toBe(409);
    expect(lateTry.json()).toMatchObject({ error: { code: 'TRY_AFTER_CANCEL', details: { orderId } } });
    expect(await stockOf(service.db, a)).toEqual({ stock: 3, reserved: 0, available: 3 });
    expect(await reservationsOf(orderId)).toEqual([]);

    // The cancel is repeatable, and confirm/restock of such an order are refused.
    expect((await post(`/stock/cancel/${orderId}`)).json()).toEqual({ orderId, releasedItems: [], status: 'released' });
    expect((await post(`/stock/confirm/${orderId}`)).json()).toMatchObject({ error: { code: 'RESERVATION_CANCELLED' } });
    expect((await post(`/stock/restock/${orderId}`)).statusCode).toBe(404);
    // Nothing was reserved or released, so no event was written.
    expect(await outboxEventTypes(service.db, orderId)).toEqual([]);
  });

  it('confirm or restock of an order that never reserved anything is 404 RESERVATION_NOT_FOUND', async () => {
    const orderId = randomUUID();
    const confirm = await post(`/stock/confirm/${orderId}`);
    expect(confirm.statusCode).toBe(404);
    expect(confirm.json()).toMatchObject({ error: { code: 'RESERVATION_NOT_FOUND' } });
    expect((await post(`/stock/restock/${orderId}`)).json()).toMatchObject({ error: { code: 'RESERVATION_NOT_FOUND' } });
    expect(await barriersOf(orderId)).toEqual([]);
  });

  it('restock returns confirmed units to stock exactly once, and only for confirmed reservations', async () => {
    const a = await createTestProduct(service, { stockQuantity: 10 });
    const orderId = randomUUID();
    await tryStock(orderId, [{ productId: a, quantity: 4 }]);

    const early = await post(`/stock/restock/${orderId}`);
    expect(early.statusCode).toBe(409);
    expect(early.json()).toMatchObject({ error: { code: 'RESERVATION_NOT_CONFIRMED', details: { status: 'RESERVED' } } });

    await post(`/stock/confirm/${orderId}`);
    expect(await stockOf(service.db, a)).toEqual({ stock: 6, reserved: 0, available: 6 });

    const restock = await post(`/stock/restock/${orderId}`);
    expect(restock.statusCode).toBe(200);
    expect(restock.json()).toEqual({ orderId, restockedItems: [{ productId: a, quantity: 4 }], status: 'restocked' });
    expect(await stockOf(service.db, a)).toEqual({ stock: 10, reserved: 0, available: 10 });

    const again = await post(`/stock/restock/${orderId}`);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(restock.json());
    expect(await stockOf(service.db, a)).toEqual({ stock: 10, reserved: 0, available: 10 });
    expect((await reservationsOf(orderId))[0]!.restocked_at).toBeInstanceOf(Date);

    const events = await service.db.selectFrom('outbox_events').select(['event_type', 'payload']).where('aggregate_id', '=', orderId).orderBy('id').execute();
    expect(events.map((event) => event.event_type)).toEqual(['STOCK_RESERVED', 'STOCK_CONFIRMED', 'STOCK_RELEASED']);
    expect(events[2]!.payload).toMatchObject({ payload: { reason: 'RESTOCKED', items: [{ productId: a, quantity: 4 }] } });
  });

  it('a multi-item try with one short item reserves nothing, writes no STOCK_RESERVED and one STOCK_RESERVATION_FAILED', async () => {
    const plenty = await createTestProduct(service, { stockQuantity: 100 });
    const scarce = await createTestProduct(service, { stockQuantity: 2 });
    const orderId = randomUUID();

    const response = await tryStock(orderId, [
      { productId: plenty, quantity: 5 },
      { productId: scarce, quantity: 3 },
    ]);
    expect(response.statusCode).toBe(409);
    expect(response.json()).toMatchObject({ error: { code: 'INSUFFICIENT_STOCK', details: { productId: scarce, requested: 3, available: 2 } } });
    expect(await stockOf(service.db, plenty)).toEqual({ stock: 100, reserved: 0, available: 100 });
    expect(await stockOf(service.db, scarce)).toEqual({ stock: 2, reserved: 0, available: 2 });
    expect(await reservationsOf(orderId)).toEqual([]);
    // The rolled-back try left no barrier either, so the order may try again.
    expect(await barriersOf(orderId)).toEqual([]);
    const events = await service.db.selectFrom('outbox_events').select(['event_type', 'payload']).where('aggregate_id', '=', orderId).execute();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      event_type: 'STOCK_RESERVATION_FAILED',
      payload: { payload: { orderId, productId: scarce, reason: 'INSUFFICIENT_STOCK', requestedQuantity: 3, availableQuantity: 2 } },
    });

    const retry = await tryStock(orderId, [
      { productId: plenty, quantity: 5 },
      { productId: scarce, quantity: 2 },
    ]);
    expect(retry.statusCode).toBe(201);
    expect(await outboxEventTypes(service.db, orderId)).toEqual(['STOCK_RESERVATION_FAILED', 'STOCK_RESERVED']);
  });

  it('a try naming an unknown product is 404 PRODUCT_NOT_FOUND and reserves nothing', async () => {
    const known = await createTestProduct(service, { stockQuantity: 5 });
    const unknown = randomUUID();
    const orderId = randomUUID();
    const response = await tryStock(orderId, [
      { productId: known, quantity: 1 },
      { productId: unknown, quantity: 1 },
    ]);
    expect(response.statusCode).toBe(404);
    expect(response.json()).toMatchObject({ error: { code: 'PRODUCT_NOT_FOUND', details: { productIds: [unknown] } } });
    expect(await stockOf(service.db, known)).toEqual({ stock: 5, reserved: 0, available: 5 });
    expect(await reservationsOf(orderId)).toEqual([]);
    expect(await barriersOf(orderId)).toEqual([]);
    expect(await outboxEventTypes(service.db, orderId)).toEqual([]);
  });

  it('a try that fails inside its transaction (forced database error) leaves no reservation, barrier or event', async () => {
    const a = await createTestProduct(service, { stockQuantity: 5 });
    const orderId = `forced-${randomUUID()}`;
    // The trigger fails the reservation insert of this one order, after stock was already adjusted.
    const allowForcedOrders = await refuseForcedOrderReservations(service.db);
    try {
      const response = await tryStock(orderId, [{ productId: a, quantity: 2 }]);
      expect(response.statusCode).toBe(500);
      expect(response.json()).toMatchObject({ error: { code: 'INTERNAL_ERROR' } });
      expect(response.body).not.toContain('forced failure');
    } finally {
      await allowForcedOrders();
    }
    expect(await stockOf(service.db, a)).toEqual({ stock: 5, reserved: 0, available: 5 });
    expect(await reservationsOf(orderId)).toEqual([]);
    expect(await barriersOf(orderId)).toEqual([]);
    expect(await outboxEventTypes(service.db, orderId)).toEqual([]);
    // The fault is transient: the same try succeeds once it is gone.
    expect((await tryStock(orderId, [{ productId: a, quantity: 2 }])).statusCode).toBe(201);
  });

  describe('bad input is a 4xx and changes nothing', () => {
    let productId: string;
    let before: { products: string; reservations: number; outbox: number };

    const snapshot = async () => {
      const products = await service.db.selectFrom('products').select(['id', 'stock_quantity', 'reserved_quantity']).orderBy('id').execute();
      const reservations = await service.db.selectFrom('stock_reservations').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
      const outbox = await service.db.selectFrom('outbox_events').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
      return { products: JSON.stringify(products), reservations: Number(reservations.n), outbox: Number(outbox.n) };
    };

    beforeAll(async () => {
      productId = await createTestProduct(service, { stockQuantity: 10 });
      before = await snapshot();
    });

    it.each([
      ['zero quantity', { orderId: 'o-1', items: [{ productId: 'PRODUCT', quantity: 0 }] }],
      ['negative quantity', { orderId: 'o-1', items: [{ productId: 'PRODUCT', quantity: -1 }] }],
      ['fractional quantity', { orderId: 'o-1', items: [{ productId: 'PRODUCT', quantity: 1.5 }] }],
      ['quantity as a string', { orderId: 'o-1', items: [{ productId: 'PRODUCT', quantity: '1' }] }],
      ['productId that is not a UUID', { orderId: 'o-1', items: [{ productId: 'abc', quantity: 1 }] }],
      ['duplicate productIds', { orderId: 'o-1', items: [{ productId: 'PRODUCT', quantity: 1 }, { productId: 'PRODUCT', quantity: 2 }] }],
      ['no items', { orderId: 'o-1', items: [] }],
      ['missing orderId', { items: [{ productId: 'PRODUCT', quantity: 1 }] }],
      ['orderId of the wrong type', { orderId: 42, items: [{ productId: 'PRODUCT', quantity: 1 }] }],
      ['orderId too long', { orderId: 'x'.repeat(101), items: [{ productId: 'PRODUCT', quantity: 1 }] }],
    ])('try with %s -> 400 VALIDATION_ERROR', async (_name, body) => {
      const payload = JSON.parse(JSON.stringify(body).replaceAll('PRODUCT', productId)) as Record<string, unknown>;
      const response = await post('/stock/try', payload);
      expect(response.statusCode).toBe(400);
      expect(response.json()).toMatchObject({ error: { code: 'VALIDATION_ERROR' } });
      expect(await snapshot()).toEqual(before);
    });

    it('malformed JSON -> 400 MALFORMED_JSON', async () => {
      const response = await service.app.inject({ method: 'POST', url: '/stock/try', headers: { ...service.worker, 'content-type': 'application/json' }, payload: '{"orderId": "o-1", "items": [' });
      expect(response.statusCode).toBe(400);
      expect(response.json()).toMatchObject({ error: { code: 'MALFORMED_JSON' } });
      expect(await snapshot()).toEqual(before);
    });

    it('an oversized body -> 413 PAYLOAD_TOO_LARGE', async () => {
      const response = await post('/stock/try', { orderId: 'o-1', items: [{ productId, quantity: 1 }], padding: 'x'.repeat(100_000) });
      expect(response.statusCode).toBe(413);
      expect(response.json()).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } });
      expect(await snapshot()).toEqual(before);
    });

    it('an order id with spaces in the path -> 400', async () => {
      const response = await post(`/stock/confirm/${encodeURIComponent('has space')}`);
      expect(response.statusCode).toBe(400);
      expect(await snapshot()).toEqual(before);
    });

    it.each([
      ['POST', '/stock/try'],
      ['POST', '/stock/confirm/o-1'],
      ['POST', '/stock/cancel/o-1'],
      ['POST', '/stock/restock/o-1'],
    ] as const)('%s %s without a credential -> 401, with a wrong one -> 401, as a customer -> 403', async (method, url) => {
      const payload = url === '/stock/try' ? { orderId: 'o-1', items: [{ productId, quantity: 1 }] } : undefined;
      const anonymous = await service.app.inject({ method, url, ...(payload ? { payload } : {}) });
      expect(anonymous.statusCode).toBe(401);
      expect(anonymous.json()).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
      const wrong = await service.app.inject({ method, url, headers: { authorization: 'Bearer not-the-service-token' }, ...(payload ? { payload } : {}) });
      expect(wrong.statusCode).toBe(401);
      const customer = await service.app.inject({ method, url, headers: await asCustomer(randomUUID()), ...(payload ? { payload } : {}) });
      expect(customer.statusCode).toBe(403);
      expect(await snapshot()).toEqual(before);
      expect(await barriersOf('o-1')).toEqual([]);
    });
  });

  it('the STOCK_RESERVED and STOCK_CONFIRMED that the one-statement try and confirm write are valid events carrying what the answers carry', async () => {
    const a = await createTestProduct(service, { stockQuantity: 8 });
    const b = await createTestProduct(service, { stockQuantity: 8 });
    const orderId = randomUUID();
    const tried = await tryStock(orderId, [
      { productId: b, quantity: 2 },
      { productId: a, quantity: 1 },
    ]);
    expect(tried.statusCode).toBe(201);
    const confirmed = await post(`/stock/confirm/${orderId}`);
    expect(confirmed.statusCode).toBe(200);

    const rows = await service.db.selectFrom('outbox_events').select(['event_type', 'payload']).where('aggregate_id', '=', orderId).orderBy('id').execute();
    expect(rows.map((row) => row.event_type)).toEqual(['STOCK_RESERVED', 'STOCK_CONFIRMED']);
    const [reserved, confirmedEvent] = rows.map((row) => parseEvent(row.payload));
    const answer = tried.json<{ reservations: unknown[] }>();
    expect(reserved!.payload).toEqual({ orderId, reservations: answer.reservations });
    expect(confirmedEvent!.payload).toEqual({ orderId, items: confirmed.json<{ items: unknown[] }>().items });
    expect(confirmedEvent!.payload).toEqual({ orderId, items: [{ productId: a, quantity: 1 }, { productId: b, quantity: 2 }].sort((x, y) => (x.productId < y.productId ? -1 : 1)) });
  });

  it('counts TCC operations by outcome in /metrics', async () => {
    const response = await service.app.inject({ method: 'GET', url: '/metrics' });
    expect(response.body).toMatch(/oms_tcc_operations_total\{[^}]*participant="stock",operation="try",outcome="applied"[^}]*\} \d+/);
    expect(response.body).toMatch(/oms_tcc_operations_total\{[^}]*operation="cancel",outcome="barrier"[^}]*\} \d+/);
    expect(response.body).toMatch(/oms_tcc_operations_total\{[^}]*operation="try",outcome="INSUFFICIENT_STOCK"[^}]*\} \d+/);
  });
});
