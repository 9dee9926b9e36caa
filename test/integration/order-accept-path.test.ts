/**
 * The accept path of POST /orders on real PostgreSQL, Redis and the product service: what is written
 * with the order (its start intent, its Idempotency-Key, its price version), where the price comes
 * from (the catalogue read model, the product service only for an unseen product), what is refused
 * at the door (unknown products, totals no payment can take, a full backlog), and that neither a
 * retry after a lost answer nor a repeated key ever makes a second order. No saga runs here: the
 * intents wait, which is what the backlog counts.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyCatalogueEvent } from '../../services/order/product-catalog';
import { connectRedis } from '../../lib/redis';
import { sampleSum } from '../helpers/metrics';
import { startTestOrderService, type TestOrderService } from '../helpers/order-service';
import { createTestProduct, startTestProductService, type TestProductService } from '../helpers/product-service';
import { connectTestTemporal, type TestTemporal } from '../helpers/temporal';

describe('POST /orders accept path', () => {
  let temporal: TestTemporal;
  let product: TestProductService;
  let service: TestOrderService;
  let redis: Redis;

  beforeAll(async () => {
    temporal = await connectTestTemporal('order-accept');
    product = await startTestProductService();
    service = await startTestOrderService({ productUrl: product.url, temporal, taskQueue: temporal.taskQueue, sagaStarter: false });
    redis = await connectRedis(service.config);
  });
  afterAll(async () => {
    await redis?.quit();
    await service?.close();
    await product?.close();
    await temporal?.close();
  });

  async function createCustomer(): Promise<string> {
    const response = await service.app.inject({ method: 'POST', url: '/customers', headers: service.operator, payload: { name: 'Grace Hopper', email: `grace-${randomUUID()}@example.com` } });
    expect(response.statusCode).toBe(201);
    return response.json<{ id: string }>().id;
  }

  async function placeOrder(customerId: string, items: { productId: string; quantity: number }[], headers: Record<string, string> = {}) {
    return service.app.inject({ method: 'POST', url: '/orders', headers: { ...(await service.asCustomer(customerId)), ...headers }, payload: { items } });
  }

  const countOrders = async () => Number((await service.db.selectFrom('orders').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);

  it('writes the order, its ORDER_CREATED and its saga start intent together, priced from the product service the first time a product is seen', async () => {
    const customerId = await createCustomer();
    const productId = await createTestProduct(product, { stockQuantity: 10, price: '7.25' });
    const placed = await placeOrder(customerId, [{ productId, quantity: 2 }]);
    expect(placed.statusCode).toBe(202);
    const { id } = placed.json<{ id: string }>();

    expect(await service.db.selectFrom('saga_start_intents').select(['order_id', 'attempts']).where('order_id', '=', id).execute()).toEqual([{ order_id: id, attempts: 0 }]);
    const events = await service.db.selectFrom('outbox_events').select('event_type').where('aggregate_id', '=', id).execute();
    expect(events.map((event) => event.event_type)).toEqual(['ORDER_CREATED']);
    const line = await service.db.selectFrom('order_items').select(['unit_price_minor', 'price_version']).where('order_id', '=', id).executeTakeFirstOrThrow();
    expect(line).toEqual({ unit_price_minor: 725, price_version: 1 });
    // The fallback's answer is kept: the next order of this product needs no call.
    expect(await service.db.selectFrom('catalogue_products').select(['price_minor', 'version']).where('product_id', '=', productId).executeTakeFirst()).toEqual({ price_minor: 725, version: 1 });
  });

  it('prices from the read model at its newest version; a late or repeated event of an older version changes nothing', async () => {
    const customerId = await createCustomer();
    const productId = await createTestProduct(product, { stockQuantity: 10, price: '10.00' });
    const event = (version: number, price: string) =>
      ({
        eventId: randomUUID(),
        eventType: 'PRODUCT_PRICE_CHANGED',
        aggregateType: 'PRODUCT',
        aggregateId: productId,
        timestamp: new Date().toISOString(),
        version: 1,
        correlationId: null,
        payload: { productId, sku: 'READ-MODEL', name: 'Read model item', price, currency: 'USD', version, previousPrice: '10.00' },
      }) as const;
    expect(await applyCatalogueEvent(service.db, event(3, '8.00'))).toBe('applied');
    expect(await applyCatalogueEvent(service.db, event(2, '9.00'))).toBe('stale');
    expect(await applyCatalogueEvent(service.db, event(3, '8.00'))).toBe('stale');

    // The product service still says 10.00: the order service prices from what the events told it.
    const placed = await placeOrder(customerId, [{ productId, quantity: 1 }]);
    expect(placed.statusCode).toBe(202);
    const order = await service.app.inject({ method: 'GET', url: `/orders/${placed.json<{ id: string }>().id}`, headers: service.operator });
    expect(order.json()).toMatchObject({ totalAmount: '8.00', items: [{ productId, productName: 'Read model item', unitPrice: '8.00', priceVersion: 3 }] });
  });

  describe('bad input is refused at the door and writes nothing', () => {
    it('an upper-case product id names the same product: accepted, stored in canonical form', async () => {
      const customerId = await createCustomer();
      const productId = await createTestProduct(product, { stockQuantity: 10, price: '3.00' });
      const placed = await placeOrder(customerId, [{ productId: productId.toUpperCase(), quantity: 1 }]);
      expect(placed.statusCode).toBe(202);
      const line = await service.db.selectFrom('order_items').select('product_id').where('order_id', '=', placed.json<{ id: string }>().id).executeTakeFirstOrThrow();
      expect(line.product_id).toBe(productId);
    });

    it('an unknown product (any letter case) is 422 UNKNOWN_PRODUCT', async () => {
      const customerId = await createCustomer();
      const before = await countOrders();
      const unknown = randomUUID().toUpperCase();
      const placed = await placeOrder(customerId, [{ productId: unknown, quantity: 1 }]);
      expect(placed.statusCode).toBe(422);
      expect(placed.json()).toMatchObject({ error: { code: 'UNKNOWN_PRODUCT', details: { productIds: [unknown.toLowerCase()] } } });
      expect(await countOrders()).toBe(before);
    });

    it('a total above the most a payment may be is 422 ORDER_TOTAL_TOO_LARGE, before any saga could reserve stock', async () => {
      const customerId = await createCustomer();
      const productId = await createTestProduct(product, { stockQuantity: 10, price: '60000000000.00' });
      const before = await countOrders();
      const placed = await placeOrder(customerId, [{ productId, quantity: 2 }]);
      expect(placed.statusCode).toBe(422);
      expect(placed.json()).toMatchObject({ error: { code: 'ORDER_TOTAL_TOO_LARGE', details: { limit: '100000000000.00' } } });
      expect(await countOrders()).toBe(before);
      // One of them is within the bound.
      expect((await placeOrder(customerId, [{ productId, quantity: 1 }])).statusCode).toBe(202);
    });
  });

  describe('Idempotency-Key', () => {
    it('a retry after the answer was lost (the process died between the commit and storing it) answers the same order; it never makes a second one', async () => {
      const customerId = await createCustomer();
      const productId = await createTestProduct(product, { stockQuantity: 10, price: '4.00' });
      const key = `lost-answer-${randomUUID()}`;
      const first = await placeOrder(customerId, [{ productId, quantity: 1 }], { 'idempotency-key': key });
      expect(first.statusCode).toBe(202);
      const before = await countOrders();

      // What a crash after the commit leaves: the key's record still PROCESSING (its lock now passed), no cached answer.
      const record = await service.db.selectFrom('idempotency_records').select('idempotency_key').where('idempotency_key', 'like', `%/${key}`).executeTakeFirstOrThrow();
      await service.db
        .updateTable('idempotency_records')
        .set({ status: 'PROCESSING', response_status: null, response_data: null, completed_at: null, locked_until: new Date(Date.now() - 1_000) })
        .where('idempotency_key', '=', record.idempotency_key)
        .execute();
      await redis.del(`oms:idempotency:order:${record.idempotency_key}`);

      const retry = await placeOrder(customerId, [{ productId, quantity: 1 }], { 'idempotency-key': key });
      expect(retry.statusCode).toBe(202);
      expect(retry.json()).toEqual(first.json());
      expect(await countOrders()).toBe(before);
      expect(await service.db.selectFrom('order_request_keys').select('order_id').where('idempotency_key', '=', record.idempotency_key).execute()).toEqual([
        { order_id: first.json<{ id: string }>().id },
      ]);
    });

    it('the same key with a different order, after its stored answer is gone, is 422 IDEMPOTENCY_KEY_REUSED and writes nothing', async () => {
      const customerId = await createCustomer();
      const productId = await createTestProduct(product, { stockQuantity: 10, price: '4.00' });
      const key = `reused-${randomUUID()}`;
      expect((await placeOrder(customerId, [{ productId, quantity: 1 }], { 'idempotency-key': key })).statusCode).toBe(202);
      // The answer store forgot the key (expired and cleaned up); the order's own record has not.
      const record = await service.db.selectFrom('idempotency_records').select('idempotency_key').where('idempotency_key', 'like', `%/${key}`).executeTakeFirstOrThrow();
      await service.db.deleteFrom('idempotency_records').where('idempotency_key', '=', record.idempotency_key).execute();
      await redis.del(`oms:idempotency:order:${record.idempotency_key}`);
      const before = await countOrders();

      const other = await placeOrder(customerId, [{ productId, quantity: 2 }], { 'idempotency-key': key });
      expect(other.statusCode).toBe(422);
      expect(other.json()).toMatchObject({ error: { code: 'IDEMPOTENCY_KEY_REUSED' } });
      expect(await countOrders()).toBe(before);
    });
  });
});

describe('POST /orders admission control', () => {
  let temporal: TestTemporal;
  let product: TestProductService;
  let service: TestOrderService;

  beforeAll(async () => {
    temporal = await connectTestTemporal('order-admission');
    product = await startTestProductService();
    service = await startTestOrderService({
      productUrl: product.url,
      temporal,
      taskQueue: temporal.taskQueue,
      sagaStarter: false,
      config: { ORDER_ADMISSION_MAX_BACKLOG: '2', ORDER_ADMISSION_REFRESH_MS: '50', ORDER_ADMISSION_RETRY_AFTER_SECONDS: '7' },
    });
  });
  afterAll(async () => {
    await service?.close();
    await product?.close();
    await temporal?.close();
  });

  async function waitForBacklog(pending: number): Promise<string> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const metrics = (await service.app.inject({ method: 'GET', url: '/metrics' })).body;
      const counted = sampleSum(metrics, 'oms_order_saga_backlog');
      if (counted === pending) return metrics;
      if (Date.now() > deadline) throw new Error(`backlog stayed ${counted}, expected ${pending}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it('at the bound, POST /orders answers 503 ORDER_BACKLOG_FULL with Retry-After and writes nothing; /metrics shows the backlog; below it orders are accepted again', async () => {
    const created = await service.app.inject({ method: 'POST', url: '/customers', headers: service.operator, payload: { name: 'Busy', email: `busy-${randomUUID()}@example.com` } });
    const customerId = created.json<{ id: string }>().id;
    const productId = await createTestProduct(product, { stockQuantity: 10, price: '1.00' });
    const place = async () =>
      service.app.inject({ method: 'POST', url: '/orders', headers: await service.asCustomer(customerId), payload: { items: [{ productId, quantity: 1 }] } });

    const accepted = [await place(), await place()];
    expect(accepted.map((answer) => answer.statusCode)).toEqual([202, 202]);
    const metrics = await waitForBacklog(2);
    expect(sampleSum(metrics, 'oms_order_saga_backlog', { stage: 'not_started' })).toBe(2);
    expect(sampleSum(metrics, 'oms_order_saga_backlog_limit')).toBe(2);

    const refused = await place();
    expect(refused.statusCode).toBe(503);
    expect(refused.headers['retry-after']).toBe('7');
    expect(refused.json()).toMatchObject({ error: { code: 'ORDER_BACKLOG_FULL', details: { backlog: 2, limit: 2 } } });
    const orders = await service.db.selectFrom('orders').select('id').where('customer_id', '=', customerId).execute();
    expect(orders).toHaveLength(2);

    // One order's saga finishes: below the bound, the next order is accepted.
    await service.db.updateTable('orders').set({ status: 'FAILED', failure_reason: 'test' }).where('id', '=', accepted[0]!.json<{ id: string }>().id).execute();
    await waitForBacklog(1);
    expect((await place()).statusCode).toBe(202);
  });
});
