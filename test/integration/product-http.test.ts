import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProductService, stockOf, type TestProductService } from '../helpers/product-service';

// The product service over a real socket, as the order service's activities call it
// (startTestProductService is what workflow suites use to run sagas against real stock).
describe('product service over HTTP', () => {
  let service: TestProductService;

  beforeAll(async () => {
    service = await startTestProductService({ RESERVATION_SWEEP_INTERVAL_MS: '3600000' });
  });
  afterAll(() => service.close());

  /** As the route's real caller; `anonymous` sends no credential. */
  const call = (method: 'GET' | 'POST', path: string, body?: unknown, anonymous = false) =>
    fetch(new URL(path, service.url), {
      method,
      headers: { ...(anonymous ? {} : service.authFor(path)), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  it('listens on a free local port and reports its dependencies healthy', async () => {
    expect(service.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const health = await call('GET', '/health');
    expect({ status: health.status, body: await health.json() }).toMatchObject({ status: 200, body: { service: 'product', status: 'UP' } });
    const docs = await call('GET', '/docs/');
    expect(docs.status).toBe(200);
    expect(docs.headers.get('content-type')).toContain('text/html');
  });

  it('runs a whole TCC round over HTTP; confirm and cancel accept an empty JSON object as body', async () => {
    const created = await call('POST', '/products', { sku: `HTTP-${randomUUID().slice(0, 8)}`, name: 'Socket widget', price: '4.20', currency: 'GBP', stockQuantity: 3 });
    expect(created.status).toBe(201);
    const { id: productId } = (await created.json()) as { id: string };

    const product = await call('GET', `/products/${productId}`, undefined, true);
    expect(await product.json()).toMatchObject({ price: '4.20', availableQuantity: 3 });

    const orderId = randomUUID();
    const tried = await call('POST', '/stock/try', { orderId, items: [{ productId, quantity: 2 }] });
    expect(tried.status).toBe(201);
    expect(await stockOf(service.db, productId)).toEqual({ stock: 3, reserved: 2, available: 1 });

    const confirmed = await call('POST', `/stock/confirm/${orderId}`, {});
    expect(confirmed.status).toBe(200);
    expect(await confirmed.json()).toEqual({ orderId, items: [{ productId, quantity: 2 }], status: 'confirmed' });

    const cancelled = await call('POST', `/stock/cancel/${orderId}`, {});
    expect(cancelled.status).toBe(409);
    const restocked = await call('POST', `/stock/restock/${orderId}`, {});
    expect(restocked.status).toBe(200);
    expect(await stockOf(service.db, productId)).toEqual({ stock: 3, reserved: 0, available: 3 });

    const anonymous = await call('POST', `/stock/cancel/${orderId}`, {}, true);
    expect(anonymous.status).toBe(401);
  });
});
