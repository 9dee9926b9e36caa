import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asCustomer } from '../helpers/auth';
import { createTestProductService, outboxEventTypes, type TestProductService } from '../helpers/product-service';

// The catalogue over a real PostgreSQL: creating (operator), reading (public), listing,
// PRODUCT_CREATED in the outbox with the row, and every kind of bad input refused unchanged.
describe('product service: catalogue', () => {
  let service: TestProductService;

  beforeAll(async () => {
    service = await createTestProductService();
  });
  afterAll(() => service.close());

  const create = (payload: Record<string, unknown>, headers: Record<string, string> = service.operator) =>
    service.app.inject({ method: 'POST', url: '/products', headers, payload });
  const countRows = async () => {
    const products = await service.db.selectFrom('products').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    const outbox = await service.db.selectFrom('outbox_events').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    return { products: Number(products.n), outbox: Number(outbox.n) };
  };

  it('creates a product (201), stores the price in minor units and writes one PRODUCT_CREATED', async () => {
    const response = await create({ sku: 'WIDGET-1', name: 'Widget', description: 'A widget', price: '12.50', currency: 'EUR', stockQuantity: 40 });
    expect(response.statusCode).toBe(201);
    const product = response.json<{ id: string }>();
    expect(product).toMatchObject({
      sku: 'WIDGET-1',
      name: 'Widget',
      description: 'A widget',
      price: '12.50',
      currency: 'EUR',
      stockQuantity: 40,
      reservedQuantity: 0,
      availableQuantity: 40,
    });
    const row = await service.db.selectFrom('products').select('price_minor').where('id', '=', product.id).executeTakeFirstOrThrow();
    expect(row.price_minor).toBe(1250);

    const fetched = await service.app.inject({ method: 'GET', url: `/products/${product.id}` });
    expect(fetched.statusCode).toBe(200);
    expect(fetched.json()).toEqual(product);

    expect(await outboxEventTypes(service.db, product.id)).toEqual(['PRODUCT_CREATED']);
    const event = await service.db.selectFrom('outbox_events').selectAll().where('aggregate_id', '=', product.id).executeTakeFirstOrThrow();
    expect(event.aggregate_type).toBe('PRODUCT');
    expect(event.payload).toMatchObject({
      eventType: 'PRODUCT_CREATED',
      payload: { productId: product.id, sku: 'WIDGET-1', name: 'Widget', price: '12.50', currency: 'EUR', stockQuantity: 40, version: 1 },
    });
  });

  it('a price change (operator) moves the version on and writes PRODUCT_PRICE_CHANGED with it; a customer or an unknown product changes nothing', async () => {
    const created = await create({ sku: 'REPRICE-1', name: 'Repriced', price: '10.00', currency: 'USD', stockQuantity: 5 });
    const { id } = created.json<{ id: string; version: number }>();
    expect(created.json()).toMatchObject({ version: 1 });
    const reprice = (url: string, headers: Record<string, string>) => service.app.inject({ method: 'PUT', url, headers, payload: { price: '8.50', currency: 'USD' } });

    const changed = await reprice(`/products/${id}/price`, service.operator);
    expect(changed.statusCode).toBe(200);
    expect(changed.json()).toMatchObject({ id, price: '8.50', version: 2 });
    expect(await outboxEventTypes(service.db, id)).toEqual(['PRODUCT_CREATED', 'PRODUCT_PRICE_CHANGED']);
    const event = await service.db.selectFrom('outbox_events').select('payload').where('aggregate_id', '=', id).where('event_type', '=', 'PRODUCT_PRICE_CHANGED').executeTakeFirstOrThrow();
    expect(event.payload).toMatchObject({ payload: { productId: id, sku: 'REPRICE-1', name: 'Repriced', price: '8.50', currency: 'USD', version: 2, previousPrice: '10.00' } });

    const before = await countRows();
    expect((await reprice(`/products/${id}/price`, await asCustomer(randomUUID()))).statusCode).toBe(403);
    const unknown = await reprice(`/products/${randomUUID()}/price`, service.operator);
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({ error: { code: 'PRODUCT_NOT_FOUND' } });
    expect((await reprice('/products/not-a-uuid/price', service.operator)).statusCode).toBe(404);
    expect(await countRows()).toEqual(before);
  });

  it('accepts a whole-number price and a JSON number with two decimals', async () => {
    const whole = await create({ sku: 'WHOLE-1', name: 'Whole', price: '7', currency: 'USD', stockQuantity: 0 });
    expect(whole.statusCode).toBe(201);
    expect(whole.json()).toMatchObject({ price: '7.00', description: null, availableQuantity: 0 });
    const numeric = await create({ sku: 'NUMERIC-1', name: 'Numeric', price: 3.25, currency: 'USD', stockQuantity: 1 });
    expect(numeric.json()).toMatchObject({ price: '3.25' });
  });

  it('refuses a second product with the same sku (409 SKU_ALREADY_EXISTS) and writes nothing', async () => {
    await create({ sku: 'DUP-1', name: 'First', price: '1.00', currency: 'USD', stockQuantity: 1 });
    const before = await countRows();
    const response = await create({ sku: 'DUP-1', name: 'Second', price: '2.00', currency: 'USD', stockQuantity: 2 });
    expect(response.statusCode).toBe(409);
    expect(response.json()).toMatchObject({ error: { code: 'SKU_ALREADY_EXISTS', details: { sku: 'DUP-1' } } });
    expect(await countRows()).toEqual(before);
  });

  it('requires an operator to create a product (401 anonymous, 403 for the worker or a customer) and creates nothing otherwise', async () => {
    const before = await countRows();
    const anonymous = await create({ sku: 'ANON-1', name: 'Anon', price: '1.00', currency: 'USD', stockQuantity: 1 }, {});
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.json()).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
    const wrong = await create({ sku: 'ANON-1', name: 'Anon', price: '1.00', currency: 'USD', stockQuantity: 1 }, { authorization: 'Bearer wrong-token-wrong-token' });
    expect(wrong.statusCode).toBe(401);
    for (const caller of [service.worker, await asCustomer(randomUUID())]) {
      const refused = await create({ sku: 'ANON-1', name: 'Anon', price: '1.00', currency: 'USD', stockQuantity: 1 }, caller);
      expect(refused.statusCode).toBe(403);
      expect(refused.json()).toMatchObject({ error: { code: 'FORBIDDEN' } });
    }
    expect(await countRows()).toEqual(before);
  });

  it.each([
    ['a price with three decimals', { price: '12.345' }],
    ['a negative price', { price: '-1.00' }],
    ['a zero price', { price: '0.00' }],
    ['a price that is not a number', { price: 'twelve' }],
    ['a float price with more than two decimals', { price: 0.125 }],
    ['a negative stock quantity', { stockQuantity: -1 }],
    ['a fractional stock quantity', { stockQuantity: 1.5 }],
    ['a stock quantity as a string', { stockQuantity: '10' }],
    ['an unsupported currency', { currency: 'XYZ' }],
    ['an empty name', { name: '   ' }],
    ['a NUL character in the name (PostgreSQL cannot store it)', { name: 'bad\u0000name' }],
    ['a NUL character in the description', { description: 'bad\u0000description' }],
    ['a sku with spaces', { sku: 'has space' }],
    ['a missing sku', { sku: undefined }],
  ])('refuses %s with 400 VALIDATION_ERROR and creates nothing', async (_name, change) => {
    const before = await countRows();
    const response = await create({ sku: `BAD-${randomUUID().slice(0, 8)}`, name: 'Bad', price: '1.00', currency: 'USD', stockQuantity: 1, ...change });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({ error: { code: 'VALIDATION_ERROR' } });
    expect(await countRows()).toEqual(before);
  });

  it('refuses malformed JSON (400) and an oversized body (413) and creates nothing', async () => {
    const before = await countRows();
    const malformed = await service.app.inject({ method: 'POST', url: '/products', headers: { ...service.operator, 'content-type': 'application/json' }, payload: '{"sku": ' });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json()).toMatchObject({ error: { code: 'MALFORMED_JSON' } });
    const oversized = await create({ sku: 'BIG-1', name: 'Big', price: '1.00', currency: 'USD', stockQuantity: 1, description: 'x'.repeat(70_000) });
    expect(oversized.statusCode).toBe(413);
    expect(await countRows()).toEqual(before);
  });

  it('answers 404 PRODUCT_NOT_FOUND for an unknown id, UUID or not', async () => {
    for (const id of [randomUUID(), 'not-a-uuid']) {
      const response = await service.app.inject({ method: 'GET', url: `/products/${id}` });
      expect(response.statusCode).toBe(404);
      expect(response.json()).toMatchObject({ error: { code: 'PRODUCT_NOT_FOUND' } });
    }
  });

  it('lists products a page at a time, oldest first: each product exactly once, even with products added between pages', async () => {
    type Page = { items: { id: string }[]; nextCursor: string | null };
    const before = (await service.app.inject({ method: 'GET', url: '/products?limit=200' })).json<Page>();
    expect(before.nextCursor).toBeNull();
    expect(before.items.length).toBeGreaterThanOrEqual(3); // the products created above
    // Rows created in the same microsecond are told apart by id: give two of them one timestamp.
    await service.db.updateTable('products').set({ created_at: new Date('2026-01-01T00:00:00.123Z') }).where('id', 'in', before.items.slice(0, 2).map((item) => item.id)).execute();
    const existing = (await service.app.inject({ method: 'GET', url: '/products?limit=200' })).json<Page>().items.map((item) => item.id);

    const seen: string[] = [];
    const added: string[] = [];
    let cursor: string | null = null;
    do {
      const url: string = `/products?limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const page = (await service.app.inject({ method: 'GET', url })).json<Page>();
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((item) => item.id));
      cursor = page.nextCursor;
      if (added.length < 2) {
        const created = await create({ sku: `LATE-${randomUUID().slice(0, 8)}`, name: 'Late', price: '1.00', currency: 'USD', stockQuantity: 1 });
        added.push(created.json<{ id: string }>().id);
      }
    } while (cursor !== null);
    // Oldest first: what existed comes first, in order; what was added during the walk comes after it.
    expect(seen.slice(0, existing.length)).toEqual(existing);
    expect(seen.slice(existing.length)).toEqual(added);
    expect(new Set(seen).size).toBe(seen.length);
  });

  it('refuses bad paging input: 400 INVALID_CURSOR for a cursor it did not give out, 400 for a bad limit', async () => {
    const forged = [
      'not-base64!',
      Buffer.from('{"a":1}').toString('base64url'),
      Buffer.from(JSON.stringify(['2026-01-01T00:00:00.000000Z', 'not-a-uuid'])).toString('base64url'),
      Buffer.from(JSON.stringify(['yesterday', randomUUID()])).toString('base64url'),
    ];
    for (const cursor of forged) {
      const bad = await service.app.inject({ method: 'GET', url: `/products?cursor=${encodeURIComponent(cursor)}` });
      expect(bad.statusCode, cursor).toBe(400);
      expect(bad.json(), cursor).toMatchObject({ error: { code: 'INVALID_CURSOR' } });
    }
    for (const query of ['limit=0', 'limit=201', 'limit=abc', `cursor=${'x'.repeat(201)}`]) {
      const bad = await service.app.inject({ method: 'GET', url: `/products?${query}` });
      expect(bad.statusCode, query).toBe(400);
    }
  });

  it('documents every route with its schemas and error responses in OpenAPI (/docs)', async () => {
    const docs = await service.app.inject({ method: 'GET', url: '/docs' });
    expect(docs.statusCode).toBeLessThan(400);
    const spec = (await service.app.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, Record<string, { tags?: string[]; responses: Record<string, unknown>; security?: unknown }>> }>();
    for (const [path, method] of [
      ['/products', 'post'],
      ['/products', 'get'],
      ['/products/{id}', 'get'],
      ['/stock/try', 'post'],
      ['/stock/confirm/{orderId}', 'post'],
      ['/stock/cancel/{orderId}', 'post'],
      ['/stock/restock/{orderId}', 'post'],
    ] as const) {
      const operation = spec.paths[path]?.[method];
      expect(operation, `${method} ${path}`).toBeDefined();
      expect(operation!.tags?.length).toBeGreaterThan(0);
      expect(Object.keys(operation!.responses)).toContain('500');
    }
    expect(spec.paths['/stock/try']!.post!.security).toEqual([{ serviceCredential: [] }, { bearerJwt: [] }]);
    expect(spec.paths['/products']!.post!.security).toEqual([{ bearerJwt: [] }]);
    expect(spec.paths['/products']!.get!.security).toBeUndefined();
    expect(Object.keys(spec.paths['/stock/try']!.post!.responses)).toEqual(expect.arrayContaining(['201', '400', '401', '403', '404', '409']));
  });
});
