/**
 * The order API end to end, all real: the order service over HTTP, the product and payment services
 * on free ports over their own databases, Temporal, and a saga worker on a private task queue. Shows
 * that prices come from the product service, that one Idempotency-Key gives one order and one saga,
 * and that confirm, cancel and the saga view act on the workflows the API started. The first test
 * is a signed-in customer's whole journey; the others act as an operator (who may act on any order)
 * to keep the focus on the sagas; test/integration/auth.test.ts covers who may do what.
 */
import { randomUUID } from 'node:crypto';
import { Client, Connection, WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJsonHttpClient } from '../../activities/http';
import { createSagaWorker } from '../../workers/saga-worker';
import { orderSagasFor } from '../../services/order/app';
import { Registry } from 'prom-client';
import { databaseOptions } from '../../db/databases';
import { startSagaStarter, type SagaStarter } from '../../workers/saga-starter';
import { cancelOrderWorkflowId, createOrderWorkflowId, getSagaProgressQuery, tccPaymentWorkflowId } from '../../workflows/order-contract';
import { startTestOrderService, type TestOrderService } from '../helpers/order-service';
import { startTestPaymentService, type TestPaymentService } from '../helpers/payment-service';
import { createTestProduct, startTestProductService, stockOf, type TestProductService } from '../helpers/product-service';
import { testConfig } from '../helpers/stack';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy';
import { connectTestTemporal, type TestTemporal } from '../helpers/temporal';

interface OrderBody {
  id: string;
  status: string;
  items: { productId: string; unitPrice: string; lineTotal: string; quantity: number }[];
  totalAmount: string;
  failureReason: string | null;
  paymentId: string | null;
  paymentReservationId: string | null;
}

describe('order API end to end, with the saga worker', () => {
  let temporal: TestTemporal;
  let product: TestProductService;
  let payment: TestPaymentService;
  let order: TestOrderService;
  let worker: Worker;
  let workerRun: Promise<void>;
  // The saga starter reaches Temporal through a proxy that a test can take off the network.
  let temporalProxy: TcpProxy;
  let starterConnection: Connection;
  let starter: SagaStarter;
  const starterMetrics = new Registry();

  beforeAll(async () => {
    temporal = await connectTestTemporal('order-e2e');
    [product, payment] = await Promise.all([startTestProductService(), startTestPaymentService()]);
    order = await startTestOrderService({ productUrl: product.url, temporal, taskQueue: temporal.taskQueue, sagaStarter: false });
    const config = testConfig();
    temporalProxy = await startTcpProxy(config.TEMPORAL_ADDRESS);
    // No client-side retry interceptor: a retry timer left behind by a call the starter gave up on
    // would fire after this connection is closed and fail the run with "Channel has been shut down".
    starterConnection = Connection.lazy({ address: temporalProxy.address, interceptors: [] });
    starter = startSagaStarter({
      db: order.db,
      listener: databaseOptions(order.config, order.databaseUrl, 'oms-e2e-saga-starter'),
      sagas: orderSagasFor(new Client({ connection: starterConnection, namespace: 'default' }), order.config),
      // Short backoff and a short call timeout, so an outage and the recovery fit in a test.
      config: { ...order.config, HTTP_CLIENT_TIMEOUT_MS: 1_000, SAGA_STARTER_RETRY_BASE_MS: 200, SAGA_STARTER_RETRY_MAX_MS: 1_000, SAGA_STARTER_POLL_INTERVAL_MS: 200 },
      log: { info: () => undefined, warn: () => undefined, error: () => undefined },
      registry: starterMetrics,
    });
    const http = { credential: config.WORKER_SERVICE_TOKEN, timeoutMs: config.HTTP_CLIENT_TIMEOUT_MS };
    worker = await createSagaWorker({
      connection: temporal.workerConnection,
      config,
      identity: `order-e2e-${randomUUID()}`,
      taskQueue: temporal.taskQueue,
      dependencies: {
        orderDb: order.workerDb,
        products: createJsonHttpClient({ ...http, baseUrl: product.url }),
        payments: createJsonHttpClient({ ...http, baseUrl: payment.url }),
      },
    });
    workerRun = worker.run();
  });
  afterAll(async () => {
    if (worker?.getState() === 'RUNNING') worker.shutdown();
    await workerRun;
    await starter?.stop();
    await starterConnection?.close();
    await temporalProxy?.close();
    await order?.close();
    await Promise.all([product?.close(), payment?.close()]);
    await temporal?.close();
  });

  /** POST to the order service; as the operator unless `headers` carry another Authorization. */
  async function post<T = unknown>(url: string, payload: unknown, headers: Record<string, string> = {}) {
    const response = await fetch(new URL(url, order.url), { method: 'POST', headers: { 'content-type': 'application/json', ...order.operator, ...headers }, body: JSON.stringify(payload) });
    return { status: response.status, headers: response.headers, body: (await response.json()) as T };
  }
  async function get<T = unknown>(url: string, headers: Record<string, string> = order.operator) {
    const response = await fetch(new URL(url, order.url), { headers });
    return { status: response.status, body: (await response.json()) as T };
  }

  async function customerWithAccount({ balance = '1000.00', status = 'ACTIVE' }: { balance?: string; status?: 'ACTIVE' | 'INACTIVE' } = {}): Promise<string> {
    const created = await post<{ id: string }>('/customers', { name: 'E2E Customer', email: `e2e-${randomUUID()}@example.com`, status });
    expect(created.status).toBe(201);
    const account = await fetch(new URL('/accounts', payment.url), {
      method: 'POST',
      headers: { ...payment.operator, 'content-type': 'application/json' },
      body: JSON.stringify({ customerId: created.body.id, balance, currency: 'USD' }),
    });
    expect(account.status).toBe(201);
    return created.body.id;
  }

  async function waitForStatus(orderId: string, status: string, timeoutMs = 30_000): Promise<OrderBody> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { body } = await get<OrderBody>(`/orders/${orderId}`);
      if (body.status === status) return body;
      if (Date.now() > deadline) throw new Error(`order ${orderId} stayed ${body.status}, expected ${status}`);
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
  }

  async function waitUntil(condition: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await condition())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Sagas the suite's starter started (oms_saga_starts_total{outcome="started"}). */
  async function startedCount(): Promise<number> {
    const metric = await starterMetrics.getSingleMetric('oms_saga_starts_total')?.get();
    return metric?.values.find((value) => value.labels.outcome === 'started')?.value ?? 0;
  }

  /** Visibility is eventually consistent: count until the server has indexed the start. */
  async function workflowsOfOrder(orderId: string, type: string): Promise<number> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const { count } = await temporal.client.workflow.count(`OrderId = '${orderId}' AND WorkflowType = '${type}'`);
      if (count > 0 || Date.now() > deadline) return count;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  it('the same POST /orders with one Idempotency-Key makes one order, one ORDER_CREATED and one saga, priced by the product service', async () => {
    const customerId = await customerWithAccount();
    const productId = await createTestProduct(product, { stockQuantity: 10, price: '12.50' });
    const key = `order-${randomUUID()}`;
    // A signed-in customer: the order is theirs because the token says so, the body names no customer.
    const body = { items: [{ productId, quantity: 3 }] };
    const asCustomer = await order.asCustomer(customerId);

    const first = await post<{ id: string; status: string; workflowId: string }>('/orders', body, { ...asCustomer, 'idempotency-key': key });
    expect(first.status).toBe(202);
    expect(first.body.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(first.body).toEqual({ id: first.body.id, status: 'PENDING', workflowId: createOrderWorkflowId(first.body.id) });
    expect(first.headers.get('location')).toBe(`/orders/${first.body.id}`);
    const again = await post('/orders', body, { ...asCustomer, 'idempotency-key': key });
    expect(again.status).toBe(202);
    expect(again.body).toEqual(first.body);
    expect(again.headers.get('idempotent-replayed')).toBe('true');

    const reused = await post<{ error: { code: string } }>('/orders', { ...body, items: [{ productId, quantity: 4 }] }, { ...asCustomer, 'idempotency-key': key });
    expect(reused.status).toBe(422);
    expect(reused.body.error.code).toBe('IDEMPOTENCY_KEY_REUSED');

    const orders = await order.db.selectFrom('orders').select('id').where('customer_id', '=', customerId).execute();
    expect(orders).toEqual([{ id: first.body.id }]);
    const created = await order.db.selectFrom('outbox_events').select('payload').where('aggregate_id', '=', first.body.id).where('event_type', '=', 'ORDER_CREATED').execute();
    expect(created).toHaveLength(1);
    expect(created[0]!.payload).toMatchObject({ payload: { totalAmount: '37.50', items: [{ productId, quantity: 3, unitPrice: '12.50' }] } });
    expect(await workflowsOfOrder(first.body.id, 'createOrder')).toBe(1);

    const paid = await waitForStatus(first.body.id, 'PAID');
    expect(paid.items).toEqual([expect.objectContaining({ productId, quantity: 3, unitPrice: '12.50', lineTotal: '37.50' })]);
    expect(paid.totalAmount).toBe('37.50');
    expect(paid.paymentId).toEqual(expect.any(String));
    expect(paid.paymentReservationId).toEqual(expect.any(String));
    expect(await stockOf(product.db, productId)).toEqual({ stock: 7, reserved: 0, available: 7 });
    // The saga ran once: still one createOrder for this order.
    expect((await temporal.client.workflow.count(`OrderId = '${first.body.id}' AND WorkflowType = 'createOrder'`)).count).toBe(1);
  });

  it('GET /orders/:id/saga shows the completed saga, its payment child and the Web UI link', async () => {
    const customerId = await customerWithAccount();
    const productId = await createTestProduct(product, { stockQuantity: 5, price: '4.00' });
    const placed = await post<{ id: string }>('/orders', { customerId, items: [{ productId, quantity: 1 }] });
    await waitForStatus(placed.body.id, 'PAID');
    const workflowId = createOrderWorkflowId(placed.body.id);
    await temporal.client.workflow.getHandle(workflowId).result();
    const { runId } = await temporal.client.workflow.getHandle(workflowId).describe();

    const saga = await get<Record<string, unknown> & { payment: Record<string, unknown> }>(`/orders/${placed.body.id}/saga`);
    expect(saga.status).toBe(200);
    expect(saga.body).toMatchObject({
      workflowId,
      runId,
      workflowType: 'createOrder',
      status: 'COMPLETED',
      sagaState: 'COMPLETED',
      progressAvailable: true,
      currentStep: null,
      completedSteps: ['validateCustomer', 'tccPayment', 'markOrderPaid'],
      compensations: [],
      failureReason: null,
      webUiUrl: `${order.config.TEMPORAL_UI_URL}/namespaces/default/workflows/${workflowId}/${runId}/history`,
      cancellation: null,
    });
    expect(saga.body.closeTime).toEqual(expect.any(String));
    expect(saga.body.payment).toMatchObject({
      workflowId: tccPaymentWorkflowId(placed.body.id),
      workflowType: 'tccPayment',
      status: 'COMPLETED',
      sagaState: 'COMPLETED',
      completedSteps: ['tryStockAndPayment', 'confirmStock', 'capturePayment'],
    });
  });

  it('an inactive customer is accepted by the API and FAILED by the saga, with the reason shown', async () => {
    const customerId = await customerWithAccount({ status: 'INACTIVE' });
    const productId = await createTestProduct(product, { stockQuantity: 5 });
    const placed = await post<{ id: string }>('/orders', { customerId, items: [{ productId, quantity: 1 }] });
    expect(placed.status).toBe(202);
    const failed = await waitForStatus(placed.body.id, 'FAILED');
    expect(failed.failureReason).toMatch(/inactive/i);
    expect(await stockOf(product.db, productId)).toEqual({ stock: 5, reserved: 0, available: 5 });
    // The order is FAILED one step before its workflow closes: wait for the close, then look.
    await expect(temporal.client.workflow.getHandle(createOrderWorkflowId(placed.body.id)).result()).rejects.toBeInstanceOf(WorkflowFailedError);

    const saga = await get<{ sagaState: string; status: string; failureReason: string }>(`/orders/${placed.body.id}/saga`);
    expect(saga.body).toMatchObject({ status: 'FAILED', sagaState: 'COMPENSATED' });
    expect(saga.body.failureReason).toMatch(/inactive/i);
  });

  it('declines for funds and for stock say what happened, without balances or stock levels, wherever a customer can read them', async () => {
    const poor = await customerWithAccount({ balance: '5.00' });
    const pricey = await createTestProduct(product, { stockQuantity: 5, price: '10.00' });
    const scarce = await createTestProduct(product, { stockQuantity: 3, price: '1.00' });
    const rich = await customerWithAccount({ balance: '1000.00' });

    const funds = await post<{ id: string }>('/orders', { customerId: poor, items: [{ productId: pricey, quantity: 1 }] });
    const stock = await post<{ id: string }>('/orders', { customerId: rich, items: [{ productId: scarce, quantity: 7 }] });
    const fundsFailed = await waitForStatus(funds.body.id, 'FAILED');
    const stockFailed = await waitForStatus(stock.body.id, 'FAILED');

    expect(fundsFailed.failureReason).toBe('InsufficientFunds: the payment was declined for insufficient funds');
    expect(stockFailed.failureReason).toBe(`InsufficientStock: not enough stock for product ${scarce}`);
    for (const orderId of [funds.body.id, stock.body.id]) {
      await expect(temporal.client.workflow.getHandle(createOrderWorkflowId(orderId)).result()).rejects.toBeInstanceOf(WorkflowFailedError);
      // Every customer-readable view of the order: no balance (5.00) and no stock level (available 3);
      // the order's own prices and quantities are the customer's, and stay.
      for (const view of [`/orders/${orderId}`, `/orders/${orderId}/saga`, `/orders?customerId=${orderId === funds.body.id ? poor : rich}`]) {
        const { body } = await get(view);
        const text = JSON.stringify(body);
        expect(text, view).not.toMatch(/available|\b5\.00\b|requested/);
      }
    }
    // Operators still have the whole story in the saga's history.
    const history = await temporal.client.workflow.getHandle(tccPaymentWorkflowId(funds.body.id)).fetchHistory();
    expect(JSON.stringify(history)).toContain('not enough available funds');
    const progress = await temporal.client.workflow.getHandle(createOrderWorkflowId(stock.body.id)).query(getSagaProgressQuery);
    expect(progress.failureReason).toMatch(/requested 7, available 3/);
  });

  it('bounds the open manual checkouts of a customer: of concurrent checkouts exactly the bound gets through', async () => {
    const limit = order.config.MAX_OPEN_CHECKOUTS_PER_CUSTOMER;
    const customerId = await customerWithAccount({ balance: '1000.00' });
    const productId = await createTestProduct(product, { stockQuantity: 50, price: '1.00' });
    const checkout = { customerId, items: [{ productId, quantity: 1 }], confirmation: 'manual' };

    const answers = await Promise.all(Array.from({ length: limit + 3 }, () => post<{ id: string; error?: { code: string; details: unknown } }>('/orders', checkout)));
    const accepted = answers.filter((answer) => answer.status === 202);
    const refused = answers.filter((answer) => answer.status === 409);
    expect(accepted).toHaveLength(limit);
    expect(refused).toHaveLength(3);
    for (const answer of refused) expect(answer.body.error).toMatchObject({ code: 'TOO_MANY_OPEN_CHECKOUTS', details: { open: limit, limit } });
    const stored = await order.db.selectFrom('orders').select('id').where('customer_id', '=', customerId).execute();
    expect(stored).toHaveLength(limit);

    // Only manual checkouts count: an order paid at once is still accepted.
    expect((await post('/orders', { ...checkout, confirmation: 'auto' })).status).toBe(202);
    // Once one checkout is no longer open, the customer may start another.
    const first = accepted[0]!.body.id;
    await waitForStatus(first, 'AWAITING_CONFIRMATION');
    expect((await post(`/orders/${first}/cancel`, { reason: 'changed my mind' })).status).toBe(202);
    await waitForStatus(first, 'CANCELLED');
    expect((await post('/orders', checkout)).status).toBe(202);
    expect((await post('/orders', checkout)).status).toBe(409);
  });

  it('unknown products and mixed currencies are refused before anything is written', async () => {
    const customerId = await customerWithAccount();
    const usd = await createTestProduct(product, { stockQuantity: 5, currency: 'USD' });
    const eur = await createTestProduct(product, { stockQuantity: 5, currency: 'EUR' });
    const missing = randomUUID();
    const before = await order.db.selectFrom('orders').select('id').execute();

    const unknown = await post<{ error: { code: string; message: string; details: { productIds: string[] } } }>('/orders', { customerId, items: [{ productId: usd, quantity: 1 }, { productId: missing, quantity: 1 }] });
    expect(unknown.status).toBe(422);
    expect(unknown.body.error.code).toBe('UNKNOWN_PRODUCT');
    expect(unknown.body.error.details.productIds).toEqual([missing]);
    expect(unknown.body.error.message).toContain(missing);

    const mixed = await post<{ error: { code: string } }>('/orders', { customerId, items: [{ productId: usd, quantity: 1 }, { productId: eur, quantity: 1 }] });
    expect(mixed.status).toBe(422);
    expect(mixed.body.error.code).toBe('MIXED_CURRENCIES');

    expect(await order.db.selectFrom('orders').select('id').execute()).toEqual(before);
  });

  it('a manual checkout waits for POST /confirm, then is PAID; a second confirm answers 409', async () => {
    const customerId = await customerWithAccount();
    const productId = await createTestProduct(product, { stockQuantity: 5, price: '20.00' });
    const placed = await post<{ id: string }>('/orders', { customerId, items: [{ productId, quantity: 2 }], confirmation: 'manual' });
    await waitForStatus(placed.body.id, 'AWAITING_CONFIRMATION');
    expect(await stockOf(product.db, productId)).toEqual({ stock: 5, reserved: 2, available: 3 });

    const confirmed = await post<{ id: string; status: string; workflowId: string }>(`/orders/${placed.body.id}/confirm`, {}, { 'idempotency-key': `confirm-${placed.body.id}` });
    expect(confirmed.status).toBe(202);
    expect(confirmed.body).toMatchObject({ id: placed.body.id, workflowId: createOrderWorkflowId(placed.body.id) });
    // The answer is the state the order is in now: CONFIRMING while the saga captures (PAID if it was quicker), never the AWAITING_CONFIRMATION it left.
    expect(['CONFIRMING', 'PAID']).toContain(confirmed.body.status);
    const readBack = await order.db.selectFrom('orders').select('status').where('id', '=', placed.body.id).executeTakeFirstOrThrow();
    expect([confirmed.body.status, 'PAID']).toContain(readBack.status);
    await waitForStatus(placed.body.id, 'PAID');
    expect(await stockOf(product.db, productId)).toEqual({ stock: 3, reserved: 0, available: 3 });

    const twice = await post<{ error: { code: string } }>(`/orders/${placed.body.id}/confirm`, {});
    expect(twice.status).toBe(409);
    expect(twice.body.error.code).toBe('ORDER_NOT_AWAITING_CONFIRMATION');
  });

  it('cancelling a PAID order runs cancelOrder to CANCELLED with the stock back; cancelling again answers 409', async () => {
    const customerId = await customerWithAccount({ balance: '100.00' });
    const productId = await createTestProduct(product, { stockQuantity: 4, price: '10.00' });
    const placed = await post<{ id: string }>('/orders', { customerId, items: [{ productId, quantity: 2 }] });
    await waitForStatus(placed.body.id, 'PAID');

    const cancel = await post<{ status: string }>(`/orders/${placed.body.id}/cancel`, { reason: 'changed my mind' });
    expect(cancel.status).toBe(202);
    await waitForStatus(placed.body.id, 'CANCELLED');
    const cancelled = await get<{ cancellationReason: string }>(`/orders/${placed.body.id}`);
    expect(cancelled.body.cancellationReason).toBe('changed my mind');
    expect(await stockOf(product.db, productId)).toEqual({ stock: 4, reserved: 0, available: 4 });
    // CANCELLED is cancelOrder's last step, committed just before its workflow closes.
    await temporal.client.workflow.getHandle(cancelOrderWorkflowId(placed.body.id)).result();

    const saga = await get<{ cancellation: { sagaState: string; status: string } }>(`/orders/${placed.body.id}/saga`);
    expect(saga.body.cancellation).toMatchObject({ workflowType: 'cancelOrder', status: 'COMPLETED', sagaState: 'COMPLETED' });

    const again = await post<{ error: { code: string } }>(`/orders/${placed.body.id}/cancel`, { reason: 'again' });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('ORDER_NOT_CANCELLABLE');
  });

  it('ids in any letter case name one product and one order: an upper-case order id cancels a PAID order completely', async () => {
    const customerId = await customerWithAccount({ balance: '100.00' });
    const productId = await createTestProduct(product, { stockQuantity: 4, price: '10.00' });
    const placed = await post<{ id: string }>('/orders', { customerId: customerId.toUpperCase(), items: [{ productId: productId.toUpperCase(), quantity: 2 }] });
    expect(placed.status).toBe(202);
    const paid = await waitForStatus(placed.body.id, 'PAID');
    expect(paid).toMatchObject({ customerId, items: [expect.objectContaining({ productId, unitPrice: '10.00' })] });

    const cancel = await post<{ id: string }>(`/orders/${placed.body.id.toUpperCase()}/cancel`, { reason: 'shouting' });
    expect(cancel.status).toBe(202);
    expect(cancel.body.id).toBe(placed.body.id);
    await waitForStatus(placed.body.id, 'CANCELLED');
    // Undone under the canonical id: stock back on the shelf, the captured money refunded.
    expect(await stockOf(product.db, productId)).toEqual({ stock: 4, reserved: 0, available: 4 });
    const account = await fetch(new URL(`/accounts/${customerId}`, payment.url), { headers: payment.operator });
    expect(await account.json()).toMatchObject({ balance: '100.00', available: '100.00' });
  });

  it('a cancel reason that cannot be stored is refused with 400 before any saga starts; the order stays PAID', async () => {
    const customerId = await customerWithAccount({ balance: '100.00' });
    const productId = await createTestProduct(product, { stockQuantity: 4, price: '10.00' });
    const placed = await post<{ id: string }>('/orders', { customerId, items: [{ productId, quantity: 1 }] });
    await waitForStatus(placed.body.id, 'PAID');

    const response = await fetch(new URL(`/orders/${placed.body.id}/cancel`, order.url), {
      method: 'POST',
      headers: { ...(await order.asCustomer(customerId)), 'content-type': 'application/json' },
      // A lone high surrogate, as a client's broken JSON encoder writes it.
      body: '{"reason":"why \\ud83d"}',
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: 'VALIDATION_ERROR', details: { issues: [{ path: '/reason' }] } } });
    await expect(temporal.client.workflow.getHandle(cancelOrderWorkflowId(placed.body.id)).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
    expect((await get<OrderBody>(`/orders/${placed.body.id}`)).body.status).toBe('PAID');
  });

  it('an Idempotency-Key request with a very long URL is answered like any other, not 500', async () => {
    const customerId = await customerWithAccount();
    const productId = await createTestProduct(product, { stockQuantity: 2, price: '1.00' });
    const placed = await post<{ id: string }>(`/orders?note=${'x'.repeat(2_000)}`, { customerId, items: [{ productId, quantity: 1 }] }, { 'idempotency-key': `long-${randomUUID()}` });
    expect(placed.status).toBe(202);
    await waitForStatus(placed.body.id, 'PAID');
  });

  it('cancelling a manual checkout that is holding its reservations releases the stock and voids the hold', async () => {
    const customerId = await customerWithAccount({ balance: '100.00' });
    const productId = await createTestProduct(product, { stockQuantity: 4, price: '10.00' });
    const placed = await post<{ id: string }>('/orders', { customerId, items: [{ productId, quantity: 3 }], confirmation: 'manual' });
    await waitForStatus(placed.body.id, 'AWAITING_CONFIRMATION');
    expect(await stockOf(product.db, productId)).toMatchObject({ reserved: 3 });

    const cancel = await post<{ status: string; workflowId: string }>(`/orders/${placed.body.id}/cancel`, { reason: 'too slow to decide' });
    expect(cancel.status).toBe(202);
    // The answer shows what the order is now, not what it was: the cancelOrder saga has it.
    expect(cancel.body.status).toBe('CANCELLING');
    await waitForStatus(placed.body.id, 'CANCELLED');
    expect(await stockOf(product.db, productId)).toEqual({ stock: 4, reserved: 0, available: 4 });
    const account = await fetch(new URL(`/accounts/${customerId}`, payment.url), { headers: await order.asCustomer(customerId) });
    expect(await account.json()).toMatchObject({ balance: '100.00', available: '100.00' });

    // The order is no longer waiting: a late confirm is refused.
    const late = await post<{ error: { code: string } }>(`/orders/${placed.body.id}/confirm`, {});
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe('ORDER_NOT_AWAITING_CONFIRMATION');
  });

  it('orders accepted while Temporal is unreachable are committed with their start intents; once it is back each saga starts exactly once and completes', async () => {
    const customerId = await customerWithAccount({ balance: '50.00' });
    const productId = await createTestProduct(product, { stockQuantity: 5, price: '5.00' });
    const startsBefore = await startedCount();
    temporalProxy.setReachable(false);
    let orderIds: string[] = [];
    try {
      // Accepted as usual: nothing on the accept path waits for Temporal.
      const placed = await Promise.all([1, 2, 3].map(() => post<{ id: string; status: string }>('/orders', { customerId, items: [{ productId, quantity: 1 }] })));
      expect(placed.map((answer) => [answer.status, answer.body.status])).toEqual([
        [202, 'PENDING'],
        [202, 'PENDING'],
        [202, 'PENDING'],
      ]);
      orderIds = placed.map((answer) => answer.body.id);

      // The starter tried each and failed: the intents wait out their backoff, the orders stay PENDING, no saga exists.
      await waitUntil(async () => {
        const intents = await order.db.selectFrom('saga_start_intents').select(['order_id', 'attempts']).where('order_id', 'in', orderIds).execute();
        return intents.length === 3 && intents.every((intent) => intent.attempts >= 1);
      }, 'each start intent failed at least once');
      expect(temporalProxy.refused()).toBeGreaterThan(0);
      const rows = await order.db.selectFrom('orders').select('status').where('id', 'in', orderIds).execute();
      expect(rows.map((row) => row.status)).toEqual(['PENDING', 'PENDING', 'PENDING']);
      for (const orderId of orderIds) {
        await expect(temporal.client.workflow.getHandle(createOrderWorkflowId(orderId)).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
      }
    } finally {
      temporalProxy.setReachable(true);
    }

    // Temporal is back: every saga starts (nothing lost) and completes.
    for (const orderId of orderIds) expect((await waitForStatus(orderId, 'PAID')).totalAmount).toBe('5.00');
    expect(await stockOf(product.db, productId)).toEqual({ stock: 2, reserved: 0, available: 2 });
    expect(await order.db.selectFrom('saga_start_intents').select('order_id').where('order_id', 'in', orderIds).execute()).toEqual([]);
    // Nothing started twice: one run per order, and the starter counted exactly three starts.
    for (const orderId of orderIds) expect((await temporal.client.workflow.count(`WorkflowId = '${createOrderWorkflowId(orderId)}'`)).count).toBe(1);
    expect((await startedCount()) - startsBefore).toBe(3);
  });
});
