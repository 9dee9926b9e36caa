/**
 * The order API on real PostgreSQL, Redis and Temporal, for everything that does not need a
 * product's price: customers, validation, state checks of confirm and cancel, the saga view, and
 * the saga starter that turns an order's start intent into its saga (run here one round at a time).
 * Sagas start on a task queue no worker polls, so they stay RUNNING exactly as started and can be
 * inspected.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { WorkflowNotFoundError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OrderStatus } from '../../db/order/schema';
import { insertAcceptedOrder, markOrderConfirming } from '../../services/order/repository';
import { formatMinor } from '../../lib/money';
import { outboxEventRow } from '../../lib/outbox';
import { cancelOrderWorkflowId, createOrderWorkflowId, SEARCH_ATTRIBUTES, type CreateOrderInput } from '../../workflows/order-contract';
import { startTestOrderService, type TestOrderService } from '../helpers/order-service';
import { connectTestTemporal, type TestTemporal } from '../helpers/temporal';

/** A port nothing listens on: the product service is down, for real. */
async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

const { orderId: ORDER_ID_KEY, customerId: CUSTOMER_ID_KEY, sagaState: SAGA_STATE_KEY } = SEARCH_ATTRIBUTES;

describe('order API', () => {
  let temporal: TestTemporal;
  let service: TestOrderService;
  const startedWorkflows: string[] = [];

  beforeAll(async () => {
    temporal = await connectTestTemporal('order-api');
    service = await startTestOrderService({
      productUrl: await closedPortUrl(),
      temporal,
      taskQueue: temporal.taskQueue,
      // Queries to a workflow nobody polls for give up quickly.
      config: { HTTP_CLIENT_TIMEOUT_MS: '1500' },
      sagaStarter: false,
    });
  });
  afterAll(async () => {
    for (const workflowId of startedWorkflows) {
      await temporal.client.workflow.getHandle(workflowId).terminate('test over').catch(() => undefined);
    }
    await service?.close();
    await temporal?.close();
  });

  const operator = () => service.operator;
  const count = async (table: 'orders' | 'order_items' | 'outbox_events' | 'idempotency_records' | 'customers' | 'saga_start_intents') =>
    Number((await service.db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);

  async function createCustomer(overrides: { email?: string; status?: 'ACTIVE' | 'INACTIVE' } = {}): Promise<string> {
    const response = await service.app.inject({
      method: 'POST',
      url: '/customers',
      headers: operator(),
      payload: { name: 'Ada Lovelace', email: overrides.email ?? `ada-${randomUUID()}@example.com`, ...(overrides.status ? { status: overrides.status } : {}) },
    });
    expect(response.statusCode).toBe(201);
    return response.json<{ id: string }>().id;
  }

  /** Writes an order exactly as POST /orders does (order, items, ORDER_CREATED and the saga start intent in one statement), then sets the status the saga would have reached. */
  async function seedOrder(customerId: string, status: OrderStatus = 'PENDING', ageSeconds = 0) {
    const orderId = randomUUID();
    const items = [
      { productId: randomUUID(), sku: 'WIDGET-1', productName: 'Widget', quantity: 2, unitPriceMinor: 1250, lineTotalMinor: 2500, priceVersion: 1 },
      { productId: randomUUID(), sku: 'GADGET-1', productName: 'Gadget', quantity: 1, unitPriceMinor: 999, lineTotalMinor: 999, priceVersion: 3 },
    ];
    const { row: event } = outboxEventRow({
      eventType: 'ORDER_CREATED',
      aggregateId: orderId,
      correlationId: orderId,
      payload: { orderId, customerId, items: items.map((i) => ({ productId: i.productId, productName: i.productName, quantity: i.quantity, unitPrice: formatMinor(i.unitPriceMinor) })), totalAmount: '34.99', currency: 'USD' },
    });
    const order = { id: orderId, customerId, totalMinor: 3499, currency: 'USD', paymentMethod: 'ACCOUNT_BALANCE', confirmation: 'manual' as const, workflowId: createOrderWorkflowId(orderId), items };
    await insertAcceptedOrder(service.db, { order, event });
    await service.db
      .updateTable('orders')
      .set({
        status,
        failure_reason: status === 'FAILED' ? 'insufficient stock' : null,
        created_at: new Date(Date.now() - ageSeconds * 1000),
      })
      .where('id', '=', orderId)
      .execute();
    return { orderId, items };
  }

  it('documents every order route in OpenAPI, with its error answers and the bearer-token requirement', async () => {
    const spec = (await service.app.inject({ method: 'GET', url: '/openapi.json' })).json<{
      paths: Record<string, Record<string, { responses: Record<string, unknown>; security?: unknown[] }>>;
    }>();
    const { paths } = spec;
    expect(Object.keys(paths)).toEqual(
      expect.arrayContaining(['/customers', '/customers/{id}', '/customers/{id}/status', '/orders', '/orders/{id}', '/orders/{id}/confirm', '/orders/{id}/cancel', '/orders/{id}/saga', '/orders/{id}/events']),
    );
    expect(Object.keys(paths['/orders']!.post!.responses)).toEqual(expect.arrayContaining(['202', '400', '409', '422', '503']));
    expect(Object.keys(paths['/orders/{id}/cancel']!.post!.responses)).toEqual(expect.arrayContaining(['202', '404', '409']));
    expect(paths['/customers']!.post!.security).toEqual([{ bearerJwt: [] }]);
    expect(paths['/orders']!.post!.security).toEqual([{ bearerJwt: [] }]);
    expect(Object.keys(paths['/orders/{id}']!.get!.responses)).toEqual(expect.arrayContaining(['200', '401', '404']));
    expect(paths['/orders']!.get!.responses['200']).toBeDefined();
  });

  describe('customers', () => {
    it('creates a customer as an operator, with CUSTOMER_CREATED in its outbox', async () => {
      const email = `Grace-${randomUUID()}@Example.com`;
      const response = await service.app.inject({ method: 'POST', url: '/customers', headers: operator(), payload: { name: 'Grace Hopper', email } });
      expect(response.statusCode).toBe(201);
      const customer = response.json<{ id: string; email: string; status: string; createdAt: string }>();
      expect(customer).toMatchObject({ name: 'Grace Hopper', email: email.toLowerCase(), status: 'ACTIVE' });
      expect(response.headers.location).toBe(`/customers/${customer.id}`);

      const events = await service.db.selectFrom('outbox_events').selectAll().where('aggregate_id', '=', customer.id).execute();
      expect(events.map((event) => event.event_type)).toEqual(['CUSTOMER_CREATED']);
      expect(events[0]!.payload).toMatchObject({ payload: { customerId: customer.id, email: email.toLowerCase(), status: 'ACTIVE' } });

      const read = await service.app.inject({ method: 'GET', url: `/customers/${customer.id}`, headers: await service.asCustomer(customer.id) });
      expect(read.statusCode).toBe(200);
      expect(read.json()).toEqual(customer);
    });

    it('refuses a caller without an operator token, writing nothing', async () => {
      const before = await count('customers');
      const response = await service.app.inject({ method: 'POST', url: '/customers', payload: { name: 'Mallory', email: 'mallory@example.com' } });
      expect(response.statusCode).toBe(401);
      expect(response.json()).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
      const wrongToken = await service.app.inject({ method: 'POST', url: '/customers', headers: { authorization: 'Bearer not-the-token-at-all' }, payload: { name: 'M', email: 'm@example.com' } });
      expect(wrongToken.statusCode).toBe(401);
      const customer = await service.app.inject({ method: 'POST', url: '/customers', headers: await service.asCustomer(randomUUID()), payload: { name: 'M', email: 'm@example.com' } });
      expect(customer.statusCode).toBe(403);
      expect(customer.json()).toMatchObject({ error: { code: 'FORBIDDEN' } });
      expect(await count('customers')).toBe(before);
    });

    it('answers 409 EMAIL_ALREADY_EXISTS for an email already taken, whatever its case', async () => {
      const email = `linus-${randomUUID()}@example.com`;
      await createCustomer({ email });
      const before = await count('outbox_events');
      const response = await service.app.inject({ method: 'POST', url: '/customers', headers: operator(), payload: { name: 'Linus', email: email.toUpperCase() } });
      expect(response.statusCode).toBe(409);
      expect(response.json()).toMatchObject({ error: { code: 'EMAIL_ALREADY_EXISTS' } });
      expect(await count('outbox_events')).toBe(before);
    });

    it('validates the body: bad email, empty name, unknown status', async () => {
      for (const payload of [{ name: 'X', email: 'not-an-email' }, { name: '', email: 'x@example.com' }, { name: 'X', email: 'x@example.com', status: 'BANNED' }]) {
        const response = await service.app.inject({ method: 'POST', url: '/customers', headers: operator(), payload });
        expect(response.statusCode).toBe(400);
        expect(response.json()).toMatchObject({ error: { code: 'VALIDATION_ERROR' } });
      }
    });

    it('deactivates a customer as an operator; 404 CUSTOMER_NOT_FOUND for an unknown one', async () => {
      const id = await createCustomer();
      const refused = await service.app.inject({ method: 'PATCH', url: `/customers/${id}/status`, payload: { status: 'INACTIVE' } });
      expect(refused.statusCode).toBe(401);
      const response = await service.app.inject({ method: 'PATCH', url: `/customers/${id}/status`, headers: operator(), payload: { status: 'INACTIVE' } });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toMatchObject({ id, status: 'INACTIVE' });
      expect((await service.app.inject({ method: 'GET', url: `/customers/${id}`, headers: operator() })).json()).toMatchObject({ status: 'INACTIVE' });

      const unknown = await service.app.inject({ method: 'GET', url: `/customers/${randomUUID()}`, headers: operator() });
      expect(unknown.statusCode).toBe(404);
      expect(unknown.json()).toMatchObject({ error: { code: 'CUSTOMER_NOT_FOUND' } });
    });
  });

  describe('POST /orders refusals write nothing', () => {
    let customerId: string;
    beforeAll(async () => {
      customerId = await createCustomer();
    });

    it.each([
      ['no items', { items: [] }],
      ['a zero quantity', { items: [{ productId: randomUUID(), quantity: 0 }] }],
      ['a fractional quantity', { items: [{ productId: randomUUID(), quantity: 1.5 }] }],
      ['a product id that is not a uuid', { items: [{ productId: 'widget', quantity: 1 }] }],
      ['the same product twice', { items: [{ productId: '6f1c3a52-5d4e-4a57-9d43-6a3f1b1f0c11', quantity: 1 }, { productId: '6f1c3a52-5d4e-4a57-9d43-6a3f1b1f0c11', quantity: 2 }] }],
      ['a client-sent unit price', { items: [{ productId: randomUUID(), quantity: 1, unitPrice: '0.01' }] }],
      ['a client-sent total', { items: [{ productId: randomUUID(), quantity: 1 }], totalAmount: '0.01' }],
      ['an unknown confirmation mode', { items: [{ productId: randomUUID(), quantity: 1 }], confirmation: 'later' }],
    ])('400 VALIDATION_ERROR for %s', async (_name, body) => {
      const response = await service.app.inject({
        method: 'POST',
        url: '/orders',
        headers: { ...(await service.asCustomer(customerId)), 'idempotency-key': `validation-${randomUUID()}` },
        payload: { customerId, ...body },
      });
      expect(response.statusCode).toBe(400);
      expect(response.json()).toMatchObject({ error: { code: 'VALIDATION_ERROR' } });
      expect(await count('orders')).toBe(0);
      // A request refused by validation never claims its Idempotency-Key.
      expect(await count('idempotency_records')).toBe(0);
    });

    it('422 UNKNOWN_CUSTOMER for a customer that does not exist', async () => {
      const unknown = randomUUID();
      // A valid token whose customer does not exist (deleted, or a provider that knows more people than we do).
      const response = await service.app.inject({ method: 'POST', url: '/orders', headers: await service.asCustomer(unknown), payload: { items: [{ productId: randomUUID(), quantity: 1 }] } });
      expect(response.statusCode).toBe(422);
      expect(response.json()).toMatchObject({ error: { code: 'UNKNOWN_CUSTOMER', details: { customerId: unknown } } });
      expect(await count('orders')).toBe(0);
    });

    it('503 DEPENDENCY_UNAVAILABLE when the product service is down; a retry with the same key runs again', async () => {
      const key = `down-${randomUUID()}`;
      const request = { method: 'POST' as const, url: '/orders', headers: { ...(await service.asCustomer(customerId)), 'idempotency-key': key }, payload: { items: [{ productId: randomUUID(), quantity: 1 }] } };
      const first = await service.app.inject(request);
      expect(first.statusCode).toBe(503);
      expect(first.json()).toMatchObject({ error: { code: 'DEPENDENCY_UNAVAILABLE', details: { dependency: 'product-service' } } });
      const retry = await service.app.inject(request);
      expect(retry.statusCode).toBe(503);
      expect(retry.headers['idempotent-replayed']).toBeUndefined();
      expect(await count('orders')).toBe(0);
      expect(await count('order_items')).toBe(0);
      expect(await service.db.selectFrom('outbox_events').select('id').where('event_type', '=', 'ORDER_CREATED').execute()).toEqual([]);
    });
  });

  it('503 DEPENDENCY_UNAVAILABLE when the product service accepts the connection but never answers', async () => {
    // A product service that hangs (a stuck process): the price lookup must give up at HTTP_CLIENT_TIMEOUT_MS.
    const sockets = new Set<Socket>();
    const hung = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
    const { port } = hung.address() as { port: number };
    const slow = await startTestOrderService({
      productUrl: `http://127.0.0.1:${port}`,
      temporal,
      taskQueue: temporal.taskQueue,
      config: { HTTP_CLIENT_TIMEOUT_MS: '300' },
      sharedDatabaseOf: service,
    });
    try {
      const customerId = await createCustomer();
      const before = await count('orders');
      const response = await slow.app.inject({ method: 'POST', url: '/orders', headers: await service.asCustomer(customerId), payload: { items: [{ productId: randomUUID(), quantity: 1 }] } });
      expect(response.statusCode).toBe(503);
      expect(response.json()).toMatchObject({ error: { code: 'DEPENDENCY_UNAVAILABLE', details: { dependency: 'product-service', reason: 'no answer within 300 ms' } } });
      expect(await count('orders')).toBe(before);
    } finally {
      await slow.close();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => hung.close(() => resolve()));
    }
  });

  describe('reading orders', () => {
    it('GET /orders/:id shows the stored unit prices, totals and ids; 404 ORDER_NOT_FOUND otherwise', async () => {
      const customerId = await createCustomer();
      const { orderId, items } = await seedOrder(customerId);
      const response = await service.app.inject({ method: 'GET', url: `/orders/${orderId}`, headers: await service.asCustomer(customerId) });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toMatchObject({
        id: orderId,
        customerId,
        status: 'PENDING',
        items: [
          { productId: items[0]!.productId, sku: 'WIDGET-1', productName: 'Widget', quantity: 2, unitPrice: '12.50', lineTotal: '25.00', priceVersion: 1 },
          { productId: items[1]!.productId, sku: 'GADGET-1', productName: 'Gadget', quantity: 1, unitPrice: '9.99', lineTotal: '9.99', priceVersion: 3 },
        ],
        totalAmount: '34.99',
        currency: 'USD',
        paymentMethod: 'ACCOUNT_BALANCE',
        confirmation: 'manual',
        failureReason: null,
        paymentId: null,
        workflowId: createOrderWorkflowId(orderId),
      });

      const missing = await service.app.inject({ method: 'GET', url: `/orders/${randomUUID()}`, headers: operator() });
      expect(missing.statusCode).toBe(404);
      expect(missing.json()).toMatchObject({ error: { code: 'ORDER_NOT_FOUND' } });
      const malformed = await service.app.inject({ method: 'GET', url: '/orders/not-a-uuid', headers: operator() });
      expect(malformed.statusCode).toBe(400);
    });

    it('GET /orders lists by customer and status, newest first', async () => {
      const customerId = await createCustomer();
      const older = await seedOrder(customerId, 'PAID', 60);
      const newer = await seedOrder(customerId, 'FAILED');
      await seedOrder(await createCustomer(), 'PAID');

      const all = (await service.app.inject({ method: 'GET', url: `/orders?customerId=${customerId}`, headers: operator() })).json<{ items: { id: string }[]; nextCursor: string | null }>();
      expect(all.items.map((order) => order.id)).toEqual([newer.orderId, older.orderId]);
      expect(all.nextCursor).toBeNull();

      const paid = (await service.app.inject({ method: 'GET', url: `/orders?customerId=${customerId}&status=PAID`, headers: operator() })).json<{ items: { id: string }[] }>();
      expect(paid.items.map((order) => order.id)).toEqual([older.orderId]);

      const first = (await service.app.inject({ method: 'GET', url: `/orders?customerId=${customerId}&limit=1`, headers: operator() })).json<{ items: { id: string }[]; nextCursor: string }>();
      expect(first.items.map((order) => order.id)).toEqual([newer.orderId]);
      const second = (await service.app.inject({ method: 'GET', url: `/orders?customerId=${customerId}&limit=1&cursor=${first.nextCursor}`, headers: operator() })).json<{ items: { id: string }[]; nextCursor: string | null }>();
      expect(second).toEqual({ items: [expect.objectContaining({ id: older.orderId })], nextCursor: null });

      const bad = await service.app.inject({ method: 'GET', url: '/orders?status=SHIPPED', headers: operator() });
      expect(bad.statusCode).toBe(400);
      const forged = await service.app.inject({ method: 'GET', url: `/orders?cursor=${Buffer.from('[1,2]').toString('base64url')}`, headers: operator() });
      expect(forged.statusCode).toBe(400);
      expect(forged.json()).toMatchObject({ error: { code: 'INVALID_CURSOR' } });
    });

    it('GET /orders walks every order exactly once, page by page, while new orders arrive', async () => {
      const customerId = await createCustomer();
      const seeded: string[] = [];
      for (let i = 0; i < 7; i += 1) seeded.push((await seedOrder(customerId, 'PAID', 100 - i)).orderId);
      // Same created_at for three of them: the id breaks the tie, to the microsecond.
      await service.db.updateTable('orders').set({ created_at: new Date('2026-03-01T12:00:00.500Z') }).where('id', 'in', seeded.slice(2, 5)).execute();

      type Page = { items: { id: string; createdAt: string }[]; nextCursor: string | null };
      const seen: Page['items'] = [];
      let cursor: string | null = null;
      do {
        const url: string = `/orders?customerId=${customerId}&limit=3${cursor ? `&cursor=${cursor}` : ''}`;
        const page = (await service.app.inject({ method: 'GET', url, headers: operator() })).json<Page>();
        seen.push(...page.items);
        cursor = page.nextCursor;
        // A new order between pages is newer than every page still to come: it never shows up twice or pushes one off.
        await seedOrder(customerId, 'PENDING');
      } while (cursor !== null);

      expect(seen.map((order) => order.id).sort()).toEqual([...seeded].sort());
      const keys = seen.map((order) => `${order.createdAt}|${order.id}`);
      expect(keys).toEqual([...keys].sort().reverse());
    });
  });

  describe('confirm and cancel check the order state', () => {
    it.each(['PENDING', 'CONFIRMING', 'PAID', 'FAILED', 'CANCELLED'] as const)('confirming a %s order answers 409 ORDER_NOT_AWAITING_CONFIRMATION', async (status) => {
      const customerId = await createCustomer();
      const { orderId } = await seedOrder(customerId, status);
      const response = await service.app.inject({ method: 'POST', url: `/orders/${orderId}/confirm`, headers: await service.asCustomer(customerId) });
      expect(response.statusCode).toBe(409);
      expect(response.json()).toMatchObject({ error: { code: 'ORDER_NOT_AWAITING_CONFIRMATION', details: { status } } });
    });

    it('a confirmation its saga accepted moves AWAITING_CONFIRMATION to CONFIRMING with its event; a saga that got further keeps its state', async () => {
      const { orderId } = await seedOrder(await createCustomer(), 'AWAITING_CONFIRMATION');
      expect(await markOrderConfirming(service.db, orderId)).toBe('CONFIRMING');
      expect(await markOrderConfirming(service.db, orderId)).toBe('CONFIRMING');
      const events = await service.db.selectFrom('outbox_events').select('event_type').where('aggregate_id', '=', orderId).orderBy('id').execute();
      expect(events.map((event) => event.event_type)).toEqual(['ORDER_CREATED', 'ORDER_CONFIRMATION_REQUESTED']);

      const paid = await seedOrder(await createCustomer(), 'PAID');
      expect(await markOrderConfirming(service.db, paid.orderId)).toBe('PAID');
      expect(await markOrderConfirming(service.db, randomUUID())).toBeUndefined();
    });

    it('confirming an AWAITING_CONFIRMATION order whose saga is gone answers 409, not 500', async () => {
      const { orderId } = await seedOrder(await createCustomer(), 'AWAITING_CONFIRMATION');
      const response = await service.app.inject({ method: 'POST', url: `/orders/${orderId}/confirm`, headers: operator() });
      expect(response.statusCode).toBe(409);
      expect(response.json()).toMatchObject({ error: { code: 'ORDER_NOT_AWAITING_CONFIRMATION' } });
    });

    it('a CANCELLING order whose cancel saga stopped can be cancelled again: a new cancelOrder run, not a 409', async () => {
      const { orderId } = await seedOrder(await createCustomer(), 'CANCELLING');
      const workflowId = cancelOrderWorkflowId(orderId);
      startedWorkflows.push(workflowId);
      const cancel = () => service.app.inject({ method: 'POST', url: `/orders/${orderId}/cancel`, headers: operator(), payload: { reason: 'changed my mind' } });

      const first = await cancel();
      expect(first.statusCode).toBe(202);
      expect(first.json()).toMatchObject({ id: orderId, status: 'CANCELLING' });
      const firstRun = (await temporal.client.workflow.getHandle(workflowId).describe()).runId;
      // Asked again while it runs: the same run answers.
      expect((await cancel()).statusCode).toBe(202);
      expect((await temporal.client.workflow.getHandle(workflowId).describe()).runId).toBe(firstRun);

      // The run stops without completing (as one that failed halfway does); the next cancel starts another.
      await temporal.client.workflow.getHandle(workflowId).terminate('stands in for a cancel that failed halfway');
      const again = await cancel();
      expect(again.statusCode).toBe(202);
      const secondRun = await temporal.client.workflow.getHandle(workflowId).describe();
      expect(secondRun.runId).not.toBe(firstRun);
      expect(secondRun.status.name).toBe('RUNNING');
    });

    it.each(['FAILED', 'CANCELLED'] as const)('cancelling a %s order answers 409 ORDER_NOT_CANCELLABLE and starts nothing', async (status) => {
      const { orderId } = await seedOrder(await createCustomer(), status);
      const response = await service.app.inject({ method: 'POST', url: `/orders/${orderId}/cancel`, headers: operator(), payload: { reason: 'changed my mind' } });
      expect(response.statusCode).toBe(409);
      expect(response.json()).toMatchObject({ error: { code: 'ORDER_NOT_CANCELLABLE', details: { status } } });
      await expect(temporal.client.workflow.getHandle(cancelOrderWorkflowId(orderId)).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
    });

    it('cancelling a PAID order starts one cancelOrder saga, however often it is asked', async () => {
      const customerId = await createCustomer();
      const { orderId } = await seedOrder(customerId, 'PAID');
      const workflowId = cancelOrderWorkflowId(orderId);
      startedWorkflows.push(workflowId);
      const asOwner = await service.asCustomer(customerId);
      const request = { method: 'POST' as const, url: `/orders/${orderId}/cancel`, headers: { ...asOwner, 'idempotency-key': `cancel-${orderId}` }, payload: { reason: 'changed my mind' } };

      const first = await service.app.inject(request);
      expect(first.statusCode).toBe(202);
      // The answer shows what the order is now: the cancelOrder saga has it.
      expect(first.json()).toEqual({ id: orderId, status: 'CANCELLING', workflowId });
      const replay = await service.app.inject(request);
      expect(replay.statusCode).toBe(202);
      expect(replay.headers['idempotent-replayed']).toBe('true');
      const withoutKey = await service.app.inject({ ...request, headers: asOwner });
      expect(withoutKey.statusCode).toBe(202);

      const description = await temporal.client.workflow.getHandle(workflowId).describe();
      expect(description).toMatchObject({ type: 'cancelOrder', taskQueue: temporal.taskQueue, status: { name: 'RUNNING' } });
      expect(description.typedSearchAttributes.get(ORDER_ID_KEY)).toBe(orderId);
      expect(description.typedSearchAttributes.get(CUSTOMER_ID_KEY)).toBe(customerId);
      const runs = await temporal.client.workflow.count(`WorkflowId = '${workflowId}'`);
      expect(runs.count).toBe(1);
      const history = await temporal.client.workflow.getHandle(workflowId).fetchHistory();
      const input = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0]?.data;
      expect(JSON.parse(Buffer.from(input!).toString())).toEqual({ orderId, reason: 'changed my mind' });
    });

    it('cancelling an unknown order answers 404 ORDER_NOT_FOUND', async () => {
      const response = await service.app.inject({ method: 'POST', url: `/orders/${randomUUID()}/cancel`, headers: operator(), payload: { reason: 'x' } });
      expect(response.statusCode).toBe(404);
      expect(response.json()).toMatchObject({ error: { code: 'ORDER_NOT_FOUND' } });
    });
  });

  describe('the saga view and the saga starter', () => {
    it('GET /orders/:id/saga answers 404 SAGA_NOT_FOUND before the saga exists', async () => {
      const { orderId } = await seedOrder(await createCustomer());
      const response = await service.app.inject({ method: 'GET', url: `/orders/${orderId}/saga`, headers: operator() });
      expect(response.statusCode).toBe(404);
      expect(response.json()).toMatchObject({ error: { code: 'SAGA_NOT_FOUND', details: { workflowId: createOrderWorkflowId(orderId) } } });
    });

    it('the starter starts the saga of a start intent once, with the stored input; an intent whose order is no longer PENDING starts nothing', async () => {
      // The intents of other tests' orders are not this test's business (and their sagas would run on after it).
      await service.db.deleteFrom('saga_start_intents').execute();
      const customerId = await createCustomer();
      // Committed with their intents; one was cancelled before the starter got to it.
      const waiting = await seedOrder(customerId, 'PENDING');
      const cancelled = await seedOrder(customerId, 'CANCELLED');
      const workflowId = createOrderWorkflowId(waiting.orderId);
      startedWorkflows.push(workflowId);

      expect(await service.drainSagaStarts()).toEqual({ started: 1, already_started: 0, dropped: 1, failed: 0 });
      expect(await count('saga_start_intents')).toBe(0);

      const handle = temporal.client.workflow.getHandle(workflowId);
      const description = await handle.describe();
      expect(description).toMatchObject({ type: 'createOrder', taskQueue: temporal.taskQueue, status: { name: 'RUNNING' } });
      expect(description.typedSearchAttributes.get(ORDER_ID_KEY)).toBe(waiting.orderId);
      expect(description.typedSearchAttributes.get(CUSTOMER_ID_KEY)).toBe(customerId);
      expect(description.typedSearchAttributes.get(SAGA_STATE_KEY)).toBe('RUNNING');
      const history = await handle.fetchHistory();
      const data = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0]?.data;
      const input = JSON.parse(Buffer.from(data!).toString()) as CreateOrderInput;
      expect(input).toEqual({
        orderId: waiting.orderId,
        customerId,
        items: waiting.items.map((item) => ({ productId: item.productId, quantity: item.quantity, unitPriceMinor: item.unitPriceMinor })),
        totalMinor: 3499,
        currency: 'USD',
        paymentMethod: 'ACCOUNT_BALANCE',
        confirmation: 'manual',
        holdTtlSeconds: service.config.CHECKOUT_HOLD_TTL_SECONDS,
      });
      await expect(temporal.client.workflow.getHandle(createOrderWorkflowId(cancelled.orderId)).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);

      // A starter that died after the start and before deleting the intent leaves it behind: the
      // repeated start finds the saga and counts it done. Still one run.
      await service.db.insertInto('saga_start_intents').values({ order_id: waiting.orderId, last_error: null }).execute();
      expect(await service.drainSagaStarts()).toEqual({ started: 0, already_started: 1, dropped: 0, failed: 0 });
      expect((await temporal.client.workflow.count(`WorkflowId = '${workflowId}'`)).count).toBe(1);
      expect((await handle.describe()).runId).toBe(description.runId);
      expect(await count('saga_start_intents')).toBe(0);
    });

    it('GET /orders/:id/saga shows the live workflow: ids, status, saga state and the Web UI link', async () => {
      const customerId = await createCustomer();
      await service.db.deleteFrom('saga_start_intents').execute();
      const { orderId } = await seedOrder(customerId, 'PENDING', 30);
      await service.drainSagaStarts();
      const workflowId = createOrderWorkflowId(orderId);
      startedWorkflows.push(workflowId);
      const { runId } = await temporal.client.workflow.getHandle(workflowId).describe();

      const response = await service.app.inject({ method: 'GET', url: `/orders/${orderId}/saga`, headers: await service.asCustomer(customerId) });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toMatchObject({
        workflowId,
        runId,
        workflowType: 'createOrder',
        status: 'RUNNING',
        // No worker polls this queue, so the query cannot be answered: the state comes from the search attribute.
        sagaState: 'RUNNING',
        progressAvailable: false,
        currentStep: null,
        completedSteps: [],
        compensations: [],
        closeTime: null,
        webUiUrl: `${service.config.TEMPORAL_UI_URL}/namespaces/default/workflows/${workflowId}/${runId}/history`,
        // createOrder never ran a step, so neither its payment child nor a cancellation exists.
        payment: null,
        cancellation: null,
      });
    });
  });
});
