/**
 * Who may do what, against the real services over HTTP (order, product and payment services on
 * their own databases, the real Redis and Temporal): every rule of services/shared/http/auth.ts and
 * of the order API's ownership, shown with the answer a caller gets and with nothing changed when
 * it is refused. Sagas start on a task queue no worker polls, so orders stay as placed.
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cancelOrderWorkflowId, createOrderWorkflowId } from '../../workflows/order-contract';
import { asCustomer, asOperator, asWorker, bearer, craftToken, customerToken, type AuthHeaders } from '../helpers/auth';
import { startTestOrderService, type TestOrderService } from '../helpers/order-service';
import { startTestPaymentService, type TestPaymentService } from '../helpers/payment-service';
import { createTestProduct, startTestProductService, type TestProductService } from '../helpers/product-service';
import { connectTestTemporal, type TestTemporal } from '../helpers/temporal';

interface Answer<T = Record<string, unknown>> {
  status: number;
  body: T & { error?: { code: string; message: string } };
  headers: Headers;
}

async function call<T = Record<string, unknown>>(base: string, method: string, path: string, { auth, body, headers = {} }: { auth?: AuthHeaders; body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer<T>> {
  const response = await fetch(new URL(path, base), {
    method,
    headers: { ...(auth ?? {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : {}) as Answer<T>['body'], headers: response.headers };
}

describe('authentication and authorization across the services', () => {
  let temporal: TestTemporal;
  let product: TestProductService;
  let payment: TestPaymentService;
  let order: TestOrderService;
  let operator: AuthHeaders;
  let productId: string;
  const startedWorkflows: string[] = [];

  const orders = (method: string, path: string, options?: Parameters<typeof call>[3]) => call(order.url, method, path, options);

  beforeAll(async () => {
    temporal = await connectTestTemporal('auth');
    [product, payment] = await Promise.all([startTestProductService(), startTestPaymentService()]);
    // Queries to sagas nobody runs give up quickly.
    order = await startTestOrderService({ productUrl: product.url, temporal, taskQueue: temporal.taskQueue, config: { HTTP_CLIENT_TIMEOUT_MS: '1500' } });
    operator = await asOperator();
    productId = await createTestProduct(product, { stockQuantity: 100, price: '3.00' });
  });
  afterAll(async () => {
    for (const workflowId of startedWorkflows) {
      await temporal.client.workflow.getHandle(workflowId).terminate('test over').catch(() => undefined);
    }
    await order?.close();
    await Promise.all([product?.close(), payment?.close()]);
    await temporal?.close();
  });

  async function newCustomer(): Promise<string> {
    const created = await orders('POST', '/customers', { auth: operator, body: { name: 'Customer', email: `c-${randomUUID()}@example.com` } });
    expect(created.status).toBe(201);
    return created.body.id as string;
  }

  /** An order placed by the customer themselves, through the API. */
  async function placeAs(customerId: string, idempotencyKey?: string): Promise<string> {
    const placed = await orders('POST', '/orders', {
      auth: await asCustomer(customerId),
      body: { items: [{ productId, quantity: 1 }] },
      headers: idempotencyKey ? { 'idempotency-key': idempotencyKey } : {},
    });
    expect(placed.status).toBe(202);
    const orderId = placed.body.id as string;
    startedWorkflows.push(createOrderWorkflowId(orderId));
    return orderId;
  }

  const orderCount = async () => Number((await order.db.selectFrom('orders').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);

  describe('401 for a missing or invalid bearer token', () => {
    const customerId = randomUUID();
    const invalid: [string, () => Promise<string>][] = [
      ['a garbage token', () => Promise.resolve('definitely-not-a-token')],
      ['an expired token', () => craftToken({ sub: customerId }, { expiresIn: Math.floor(Date.now() / 1000) - 300 })],
      ['a token for another audience', () => craftToken({ sub: customerId }, { audience: 'another-api' })],
      ['a token from another issuer', () => craftToken({ sub: customerId }, { issuer: 'https://someone-else.example/' })],
      ['a token with an algorithm not allowed (HS256)', () => craftToken({ sub: customerId }, { algorithm: 'HS256', key: new TextEncoder().encode('s'.repeat(32)) })],
      ['a token signed by an unknown key', () => craftToken({ sub: customerId }, { key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey })],
    ];

    it('without a token: 401 UNAUTHORIZED with a Bearer challenge, on every order route', async () => {
      const id = randomUUID();
      for (const [method, path, body] of [
        ['POST', '/orders', { customerId, items: [{ productId, quantity: 1 }] }],
        ['GET', '/orders?limit=200', undefined],
        ['GET', `/orders/${id}`, undefined],
        ['GET', `/orders/${id}/saga`, undefined],
        ['GET', `/orders/${id}/events`, undefined],
        ['POST', `/orders/${id}/confirm`, {}],
        ['POST', `/orders/${id}/cancel`, { reason: 'x' }],
        ['GET', `/customers/${customerId}`, undefined],
      ] as const) {
        const answer = await orders(method, path, { body });
        expect(answer.status, `${method} ${path}`).toBe(401);
        expect(answer.body.error?.code).toBe('UNAUTHORIZED');
        expect(answer.headers.get('www-authenticate')).toBe('Bearer realm="oms"');
      }
    });

    it.each(invalid)('with %s: 401 invalid_token, and no order is written', async (_, token) => {
      const before = await orderCount();
      const answer = await orders('POST', '/orders', { auth: bearer(await token()), body: { items: [{ productId, quantity: 1 }] } });
      expect(answer.status).toBe(401);
      expect(answer.body.error?.code).toBe('UNAUTHORIZED');
      expect(answer.headers.get('www-authenticate')).toContain('error="invalid_token"');
      expect(await orderCount()).toBe(before);
    });
  });

  describe("a customer's token: their own orders, nobody else's", () => {
    let alice: string;
    let bob: string;
    let alicesOrder: string;

    beforeAll(async () => {
      [alice, bob] = await Promise.all([newCustomer(), newCustomer()]);
      alicesOrder = await placeAs(alice);
    });

    it("POST /orders takes the customer from the token; naming another customer is 403 and writes nothing", async () => {
      const stored = await order.db.selectFrom('orders').select('customer_id').where('id', '=', alicesOrder).executeTakeFirstOrThrow();
      expect(stored.customer_id).toBe(alice);

      const before = await orderCount();
      const forBob = await orders('POST', '/orders', { auth: await asCustomer(alice), body: { customerId: bob, items: [{ productId, quantity: 1 }] } });
      expect(forBob.status).toBe(403);
      expect(forBob.body.error?.code).toBe('FORBIDDEN');
      expect(await orderCount()).toBe(before);

      const namingHerself = await orders('POST', '/orders', { auth: await asCustomer(alice), body: { customerId: alice, items: [{ productId, quantity: 1 }] } });
      expect(namingHerself.status).toBe(202);
      startedWorkflows.push(createOrderWorkflowId(namingHerself.body.id as string));
    });

    it("GET, saga, events, confirm and cancel of another customer's order are 404 ORDER_NOT_FOUND, as for a missing order", async () => {
      const asBob = await asCustomer(bob);
      const missing = randomUUID();
      for (const [method, suffix, body] of [
        ['GET', '', undefined],
        ['GET', '/saga', undefined],
        ['GET', '/events', undefined],
        ['POST', '/confirm', {}],
        ['POST', '/cancel', { reason: 'not mine' }],
      ] as const) {
        const foreign = await orders(method, `/orders/${alicesOrder}${suffix}`, { auth: asBob, body });
        const absent = await orders(method, `/orders/${missing}${suffix}`, { auth: asBob, body });
        expect(foreign.status, `${method} ${suffix}`).toBe(404);
        expect(foreign.body.error?.code).toBe('ORDER_NOT_FOUND');
        // Word for word what a missing order gets, but for the id: existence is not revealed.
        expect(foreign.body.error?.message.replace(alicesOrder, 'ID')).toBe(absent.body.error?.message.replace(missing, 'ID'));
      }
      // Nothing happened to Alice's order: no cancel saga, status as placed.
      await expect(temporal.client.workflow.getHandle(cancelOrderWorkflowId(alicesOrder)).describe()).rejects.toThrow();
      expect((await order.db.selectFrom('orders').select('status').where('id', '=', alicesOrder).executeTakeFirstOrThrow()).status).toBe('PENDING');

      // The owner, and an operator, see it.
      expect((await orders('GET', `/orders/${alicesOrder}`, { auth: await asCustomer(alice) })).status).toBe(200);
      expect((await orders('GET', `/orders/${alicesOrder}/events`, { auth: await asCustomer(alice) })).status).toBe(200);
      expect((await orders('GET', `/orders/${alicesOrder}`, { auth: operator })).status).toBe(200);
    });

    it("the owner may cancel their order; Bob's attempt before it changed nothing", async () => {
      const mine = await placeAs(alice);
      const cancelled = await orders('POST', `/orders/${mine}/cancel`, { auth: await asCustomer(alice), body: { reason: 'changed my mind' } });
      expect(cancelled.status).toBe(202);
      startedWorkflows.push(cancelOrderWorkflowId(mine));
    });

    it("GET /orders lists only the caller's orders; another customer's id is 403; an operator sees everyone's and may filter", async () => {
      const bobsOrder = await placeAs(bob);
      const listOf = async (auth: AuthHeaders, query = '') => orders('GET', `/orders?limit=200${query}`, { auth }) as Promise<Answer<{ items: { id: string; customerId: string }[] }>>;

      const alicesList = await listOf(await asCustomer(alice));
      expect(alicesList.status).toBe(200);
      expect(alicesList.body.items.length).toBeGreaterThan(0);
      expect(new Set(alicesList.body.items.map((item) => item.customerId))).toEqual(new Set([alice]));
      expect(alicesList.body.items.map((item) => item.id)).not.toContain(bobsOrder);

      const snooping = await listOf(await asCustomer(alice), `&customerId=${bob}`);
      expect(snooping.status).toBe(403);
      expect(snooping.body.error?.code).toBe('FORBIDDEN');

      const everyone = await listOf(operator);
      expect(everyone.body.items.map((item) => item.id)).toEqual(expect.arrayContaining([alicesOrder, bobsOrder]));
      const bobsOnly = await listOf(operator, `&customerId=${bob}`);
      expect(bobsOnly.body.items.map((item) => item.id)).toEqual([bobsOrder]);
    });

    it('GET /customers/:id answers only the customer themselves (403 for any other id, existing or not) and operators', async () => {
      const asAlice = await asCustomer(alice);
      expect((await orders('GET', `/customers/${alice}`, { auth: asAlice })).body).toMatchObject({ id: alice });
      for (const other of [bob, randomUUID()]) {
        const answer = await orders('GET', `/customers/${other}`, { auth: asAlice });
        expect(answer.status).toBe(403);
        expect(answer.body.error?.code).toBe('FORBIDDEN');
        expect(answer.body).not.toHaveProperty('email');
      }
      expect((await orders('GET', `/customers/${bob}`, { auth: operator })).body).toMatchObject({ id: bob });
    });

    it('an Idempotency-Key belongs to its caller: two customers sending the same key get their own orders', async () => {
      const key = `shared-${randomUUID()}`;
      const alices = await placeAs(alice, key);
      const bobs = await placeAs(bob, key);
      expect(bobs).not.toBe(alices);
      const owners = await order.db.selectFrom('orders').select(['id', 'customer_id']).where('id', 'in', [alices, bobs]).execute();
      expect(Object.fromEntries(owners.map((row) => [row.id, row.customer_id]))).toEqual({ [alices]: alice, [bobs]: bob });
    });

    it('an operator places an order for a named customer, and must name one', async () => {
      const placed = await orders('POST', '/orders', { auth: operator, body: { customerId: bob, items: [{ productId, quantity: 1 }] } });
      expect(placed.status).toBe(202);
      startedWorkflows.push(createOrderWorkflowId(placed.body.id as string));
      const unnamed = await orders('POST', '/orders', { auth: operator, body: { items: [{ productId, quantity: 1 }] } });
      expect(unnamed.status).toBe(400);
      expect(unnamed.body.error?.code).toBe('VALIDATION_ERROR');
    });

    it("a customer reads their own account balance, not another's", async () => {
      for (const customerId of [alice, bob]) {
        expect((await call(payment.url, 'POST', '/accounts', { auth: operator, body: { customerId, balance: '20.00', currency: 'USD' } })).status).toBe(201);
      }
      expect((await call(payment.url, 'GET', `/accounts/${alice}`, { auth: await asCustomer(alice) })).body).toMatchObject({ customerId: alice, balance: '20.00' });
      const other = await call(payment.url, 'GET', `/accounts/${bob}`, { auth: await asCustomer(alice) });
      expect(other.status).toBe(403);
      expect(other.body).not.toHaveProperty('balance');
    });
  });

  describe('only an operator creates customers, products and accounts', () => {
    const callers: [string, () => Promise<AuthHeaders | undefined>, number][] = [
      ['no credential', () => Promise.resolve(undefined), 401],
      ['a customer token', () => asCustomer(randomUUID()), 403],
      ["the saga worker's credential", () => Promise.resolve(asWorker()), 403],
    ];
    it.each(callers)('%s is refused (%i) and creates nothing', async (_, auth, status) => {
      const headers = await auth();
      const customerId = randomUUID();
      const sku = `AUTH-${randomUUID().slice(0, 8)}`;
      const attempts = [
        await orders('POST', '/customers', { auth: headers, body: { name: 'Mallory', email: `m-${randomUUID()}@example.com` } }),
        await call(product.url, 'POST', '/products', { auth: headers, body: { sku, name: 'Free money', price: '1.00', currency: 'USD', stockQuantity: 1 } }),
        // Creating an account with a balance is creating money.
        await call(payment.url, 'POST', '/accounts', { auth: headers, body: { customerId, balance: '1000000.00', currency: 'USD' } }),
      ];
      for (const attempt of attempts) {
        expect(attempt.status).toBe(status);
        expect(attempt.body.error?.code).toBe(status === 401 ? 'UNAUTHORIZED' : 'FORBIDDEN');
      }
      expect(await product.db.selectFrom('products').select('id').where('sku', '=', sku).execute()).toEqual([]);
      expect(await payment.db.selectFrom('customer_accounts').select('customer_id').where('customer_id', '=', customerId).execute()).toEqual([]);
    });

    it('an operator token creates all three', async () => {
      const customerId = await newCustomer();
      const created = await call(payment.url, 'POST', '/accounts', { auth: operator, body: { customerId, balance: '5.00', currency: 'USD' } });
      expect(created.status).toBe(201);
      const productCreated = await call(product.url, 'POST', '/products', { auth: operator, body: { sku: `OP-${randomUUID().slice(0, 8)}`, name: 'Real', price: '1.00', currency: 'USD', stockQuantity: 1 } });
      expect(productCreated.status).toBe(201);
    });
  });

  describe("the saga worker's credential: TCC, restock and order refunds only", () => {
    it('runs the stock and payment TCC steps', async () => {
      const customerId = randomUUID();
      await call(payment.url, 'POST', '/accounts', { auth: operator, body: { customerId, balance: '10.00', currency: 'USD' } });
      const orderId = randomUUID();
      const stock = await call(product.url, 'POST', '/stock/try', { auth: asWorker(), body: { orderId, items: [{ productId, quantity: 1 }] } });
      expect(stock.status).toBe(201);
      const hold = await call(payment.url, 'POST', '/payments/try', { auth: asWorker(), body: { orderId, customerId, amount: '3.00', currency: 'USD' } });
      expect(hold.status).toBe(201);
      expect((await call(payment.url, 'POST', `/payments/cancel-by-order/${orderId}`, { auth: asWorker() })).status).toBe(200);
      expect((await call(product.url, 'POST', `/stock/cancel/${orderId}`, { auth: asWorker() })).status).toBe(200);
    });

    it('is refused (403) on account creation, arbitrary refunds and payment reads, and changes no balance', async () => {
      const customerId = randomUUID();
      await call(payment.url, 'POST', '/accounts', { auth: operator, body: { customerId, balance: '10.00', currency: 'USD' } });
      for (const [method, path, body] of [
        ['POST', '/accounts', { customerId: randomUUID(), balance: '999.00', currency: 'USD' }],
        ['POST', `/payments/${randomUUID()}/refunds`, { amount: '1.00' }],
        ['GET', '/payments', undefined],
        ['GET', `/accounts/${customerId}`, undefined],
      ] as const) {
        const answer = await call(payment.url, method, path, { auth: asWorker(), body });
        expect(answer.status, `${method} ${path}`).toBe(403);
        expect(answer.body.error?.code).toBe('FORBIDDEN');
      }
      expect((await call(payment.url, 'GET', `/accounts/${customerId}`, { auth: operator })).body).toMatchObject({ balance: '10.00' });
    });

    it('cannot use the order API, and a customer token cannot use the TCC endpoints', async () => {
      expect((await orders('GET', '/orders', { auth: asWorker() })).status).toBe(403);
      const customer = bearer(await customerToken(randomUUID()));
      const tcc = await call(payment.url, 'POST', '/payments/try', { auth: customer, body: { orderId: randomUUID(), customerId: randomUUID(), amount: '1.00', currency: 'USD' } });
      expect(tcc.status).toBe(403);
      expect((await call(product.url, 'POST', `/stock/restock/${randomUUID()}`, { auth: customer })).status).toBe(403);
    });
  });

  it('every route answers anonymous callers 401, except the public ones (health, metrics, docs, the catalogue)', async () => {
    const PUBLIC = new Set(['GET /health', 'GET /health/live', 'GET /metrics', 'GET /products', 'GET /products/{id}']);
    const checked: string[] = [];
    for (const service of [order, product, payment]) {
      const spec = (await service.app.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, Record<string, { security?: unknown[] }>> }>();
      for (const [path, operations] of Object.entries(spec.paths)) {
        for (const [method, operation] of Object.entries(operations)) {
          const route = `${method.toUpperCase()} ${path}`;
          const url = path.replace(/\{[^}]+\}/g, randomUUID());
          const answer = await service.app.inject({ method: method.toUpperCase() as 'GET', url, ...(method === 'get' ? {} : { payload: {} }) });
          if (PUBLIC.has(route)) {
            expect(answer.statusCode, route).not.toBe(401);
            expect(operation.security, route).toBeUndefined();
          } else {
            expect(answer.statusCode, route).toBe(401);
            expect(operation.security, `${route} declares its security in OpenAPI`).toBeDefined();
          }
          checked.push(route);
        }
      }
    }
    expect(checked).toEqual(expect.arrayContaining(['POST /orders', 'POST /accounts', 'POST /stock/try', 'POST /payments/refund-by-order/{orderId}', 'GET /products']));
  });
});
