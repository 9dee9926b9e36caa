/**
 * Everything a saga test needs, all real: the Temporal server, a product service and a payment
 * service listening on free ports over their own fresh databases, a fresh order_db, and a saga
 * worker on a private task queue wired to them. Orders and customers are inserted into order_db
 * directly (the order HTTP API is not under test here) the way POST /orders writes them.
 */
import { randomUUID } from 'node:crypto';
import { WorkflowIdReusePolicy, type WorkflowHandle } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import type { Kysely } from 'kysely';
import type { OrderDatabase, OrderStatus } from '../../db/order/schema';
import { createJsonHttpClient } from '../../activities/http';
import type { Registry } from 'prom-client';
import { createSagaMetrics } from '../../workers/saga-metrics';
import { createSagaWorker } from '../../workers/saga-worker';
import {
  cancelOrderWorkflowId,
  createOrderWorkflowId,
  SEARCH_ATTRIBUTES,
  WORKFLOW_TYPES,
  type CancelOrderInput,
  type ConfirmationMode,
  type CreateOrderInput,
  type SagaTimeouts,
} from '../../workflows/order-contract';
import type { cancelOrder as cancelOrderWorkflow } from '../../workflows/cancel-order';
import type { createOrder as createOrderWorkflow } from '../../workflows/create-order';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy';
import { startTestPaymentService, type TestPaymentService } from '../helpers/payment-service';
import { createTestProduct, startTestProductService, stockOf, type TestProductService } from '../helpers/product-service';
import { testConfig } from '../helpers/stack';
import { connectTestTemporal, type TestTemporal } from '../helpers/temporal';

/** Short bounds so a saga that must give up does so in seconds. */
export const TEST_TIMEOUTS: SagaTimeouts = {
  activityStartToCloseMs: 4_000,
  maximumAttempts: 3,
  compensationMaximumAttempts: 10,
  initialRetryIntervalMs: 100,
  maximumRetryIntervalMs: 1_000,
};

export interface SagaHarness {
  temporal: TestTemporal;
  product: TestProductService;
  payment: TestPaymentService;
  order: TestDatabase<'order'>;
  worker: Worker;
  /** With `faultyPayments`: the proxy between the worker and the payment service. */
  paymentProxy: FaultProxy | undefined;
  /** With `faultyProducts`: the proxy between the worker and the product service. */
  productProxy: FaultProxy | undefined;
  /** Starts another saga worker on the same queue (used after killing one). */
  startWorker: () => Promise<{ worker: Worker; stop: () => Promise<void> }>;
  close: () => Promise<void>;
}

export interface HarnessOptions {
  productOverrides?: Record<string, string>;
  paymentOverrides?: Record<string, string>;
  /** false: no in-process worker (a test runs its own, e.g. as a child process). */
  runWorker?: boolean;
  /** Where the worker thinks the payment service is (a closed port simulates it being down). */
  workerPaymentUrl?: string;
  /** The worker calls the payment service through a fault proxy (harness.paymentProxy). */
  faultyPayments?: boolean;
  /** The worker calls the product service through a fault proxy (harness.productProxy). */
  faultyProducts?: boolean;
  /** Where the worker reports its saga metrics (default: a registry nobody reads). */
  metricsRegistry?: Registry;
}

export async function startSagaHarness(
  suite: string,
  { productOverrides = {}, paymentOverrides = {}, runWorker = true, workerPaymentUrl, faultyPayments = false, faultyProducts = false, metricsRegistry }: HarnessOptions = {},
): Promise<SagaHarness> {
  const temporal = await connectTestTemporal(suite);
  const [product, payment, order] = await Promise.all([
    startTestProductService(productOverrides),
    startTestPaymentService(paymentOverrides),
    createTestDatabase('order'),
  ]);
  const paymentProxy = faultyPayments ? await startFaultProxy(payment.url) : undefined;
  const productProxy = faultyProducts ? await startFaultProxy(product.url) : undefined;
  const config = testConfig();
  // The worker calls the participants with its own credential, as in production.
  const http = { credential: config.WORKER_SERVICE_TOKEN, timeoutMs: config.HTTP_CLIENT_TIMEOUT_MS };
  const sagaMetrics = metricsRegistry ? createSagaMetrics(metricsRegistry, temporal.client) : undefined;
  const startWorker = async () => {
    const worker = await createSagaWorker({
      connection: temporal.workerConnection,
      config,
      identity: `saga-test-${randomUUID()}`,
      taskQueue: temporal.taskQueue,
      dependencies: {
        orderDb: order.worker,
        products: createJsonHttpClient({ ...http, baseUrl: productProxy?.url ?? product.url }),
        payments: createJsonHttpClient({ ...http, baseUrl: paymentProxy?.url ?? workerPaymentUrl ?? payment.url }),
      },
      ...(sagaMetrics ? { sagaMetrics } : {}),
    });
    const running = worker.run();
    return {
      worker,
      stop: async () => {
        if (worker.getState() === 'RUNNING') worker.shutdown();
        await running;
      },
    };
  };
  const started = runWorker ? await startWorker() : null;
  return {
    temporal,
    product,
    payment,
    order,
    worker: started?.worker as Worker,
    paymentProxy,
    productProxy,
    startWorker,
    close: async () => {
      await started?.stop();
      await paymentProxy?.close();
      await productProxy?.close();
      await Promise.all([product.close(), payment.close(), order.destroy()]);
      await temporal.close();
    },
  };
}

export async function createCustomer(harness: SagaHarness, { status = 'ACTIVE', balance = '1000.00' }: { status?: 'ACTIVE' | 'INACTIVE'; balance?: string } = {}): Promise<string> {
  const customer = await harness.order.db
    .insertInto('customers')
    .values({ name: 'Test Customer', email: `customer-${randomUUID()}@example.test`, status })
    .returning('id')
    .executeTakeFirstOrThrow();
  const response = await fetch(new URL('/accounts', harness.payment.url), {
    method: 'POST',
    headers: { ...harness.payment.operator, 'content-type': 'application/json' },
    body: JSON.stringify({ customerId: customer.id, balance, currency: 'USD' }),
  });
  if (response.status !== 201) throw new Error(`opening an account answered ${response.status}: ${await response.text()}`);
  return customer.id;
}

export function createProduct(harness: SagaHarness, stockQuantity: number, price = '10.00'): Promise<string> {
  return createTestProduct(harness.product, { stockQuantity, price, currency: 'USD' });
}

/** Writes the order as POST /orders does (PENDING, with its items) and returns the saga input. */
export async function placeOrder(
  harness: SagaHarness,
  { customerId, lines, confirmation = 'auto', holdTtlSeconds = 30 }: { customerId: string; lines: { productId: string; quantity: number; unitPriceMinor: number }[]; confirmation?: ConfirmationMode; holdTtlSeconds?: number },
): Promise<CreateOrderInput> {
  const orderId = randomUUID();
  const totalMinor = lines.reduce((sum, line) => sum + line.quantity * line.unitPriceMinor, 0);
  await harness.order.db.transaction().execute(async (trx) => {
    await trx
      .insertInto('orders')
      .values({
        id: orderId,
        customer_id: customerId,
        total_minor: totalMinor,
        currency: 'USD',
        payment_method: 'ACCOUNT_BALANCE',
        confirmation_mode: confirmation,
        workflow_id: createOrderWorkflowId(orderId),
      })
      .execute();
    await trx
      .insertInto('order_items')
      .values(
        lines.map((line, index) => ({
          order_id: orderId,
          product_id: line.productId,
          sku: `SKU-${index}`,
          product_name: `Product ${index}`,
          quantity: line.quantity,
          unit_price_minor: line.unitPriceMinor,
          line_total_minor: line.quantity * line.unitPriceMinor,
        })),
      )
      .execute();
  });
  return {
    orderId,
    customerId,
    items: lines,
    totalMinor,
    currency: 'USD',
    paymentMethod: 'ACCOUNT_BALANCE',
    confirmation,
    holdTtlSeconds,
    timeouts: TEST_TIMEOUTS,
  };
}

/** Starts createOrder the way the order service does: id from the order id, duplicates rejected, searchable. */
export function startCreateOrder(harness: SagaHarness, input: CreateOrderInput): Promise<WorkflowHandle<typeof createOrderWorkflow>> {
  return harness.temporal.client.workflow.start<typeof createOrderWorkflow>(WORKFLOW_TYPES.createOrder, {
    taskQueue: harness.temporal.taskQueue,
    workflowId: createOrderWorkflowId(input.orderId),
    workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
    args: [input],
    typedSearchAttributes: [
      { key: SEARCH_ATTRIBUTES.orderId, value: input.orderId },
      { key: SEARCH_ATTRIBUTES.customerId, value: input.customerId },
      { key: SEARCH_ATTRIBUTES.sagaState, value: 'RUNNING' },
    ],
  });
}

export function startCancelOrder(harness: SagaHarness, input: CancelOrderInput): Promise<WorkflowHandle<typeof cancelOrderWorkflow>> {
  return harness.temporal.client.workflow.start<typeof cancelOrderWorkflow>(WORKFLOW_TYPES.cancelOrder, {
    taskQueue: harness.temporal.taskQueue,
    workflowId: cancelOrderWorkflowId(input.orderId),
    workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
    args: [{ timeouts: TEST_TIMEOUTS, ...input }],
  });
}

export async function orderRow(harness: SagaHarness, orderId: string) {
  return harness.order.db.selectFrom('orders').selectAll().where('id', '=', orderId).executeTakeFirstOrThrow();
}

/** Order outbox event types of one order, in commit order. */
export async function orderEvents(db: Kysely<OrderDatabase>, orderId: string): Promise<string[]> {
  const rows = await db.selectFrom('outbox_events').select('event_type').where('aggregate_id', '=', orderId).orderBy('id').execute();
  return rows.map((row) => row.event_type);
}

export async function waitForOrderStatus(harness: SagaHarness, orderId: string, status: OrderStatus, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const row = await orderRow(harness, orderId);
    if (row.status === status) return;
    if (Date.now() > deadline) throw new Error(`order ${orderId} stayed ${row.status}, expected ${status}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The customer's account as the payment service reports it (decimal strings). */
export async function accountOf(harness: SagaHarness, customerId: string): Promise<{ balance: string; held: string; available: string }> {
  const response = await fetch(new URL(`/accounts/${customerId}`, harness.payment.url), { headers: harness.payment.operator });
  if (response.status !== 200) throw new Error(`reading account answered ${response.status}`);
  return (await response.json()) as { balance: string; held: string; available: string };
}

/** Payment rows (captures) of an order, straight from payment_db. */
export async function paymentsOf(harness: SagaHarness, orderId: string) {
  return harness.payment.db.selectFrom('payments').selectAll().where('order_id', '=', orderId).execute();
}

/** Stock reservations of an order by status, straight from product_db. */
export async function stockReservationStatuses(harness: SagaHarness, orderId: string): Promise<string[]> {
  const rows = await harness.product.db.selectFrom('stock_reservations').select('status').where('order_id', '=', orderId).execute();
  return rows.map((row) => row.status);
}

export { stockOf };

type HistoryEvent = NonNullable<Awaited<ReturnType<WorkflowHandle['fetchHistory']>>['events']>[number];

/** What a local activity's marker says about its run (the SDK records it as JSON), or undefined for any other event. */
export function localActivityMarker(event: HistoryEvent): { activityType: string; attempt: number } | undefined {
  const marker = event.markerRecordedEventAttributes;
  const data = marker?.details?.data?.payloads?.[0]?.data;
  if (marker?.markerName !== 'core_local_activity' || !data) return undefined;
  const { activity_type, attempt } = JSON.parse(Buffer.from(data).toString('utf8')) as { activity_type: string; attempt: number };
  return { activityType: activity_type, attempt };
}

/** The attempts of an activity that a history records: started activity tasks, or the local activity's marker (its last attempt). */
export function recordedAttempts(events: HistoryEvent[], activityType: string): number[] {
  const scheduled = new Map<string, string>();
  return events.flatMap((event) => {
    const local = localActivityMarker(event);
    if (local) return local.activityType === activityType ? [local.attempt] : [];
    if (event.activityTaskScheduledEventAttributes) scheduled.set(String(event.eventId), event.activityTaskScheduledEventAttributes.activityType?.name ?? '');
    const started = event.activityTaskStartedEventAttributes;
    return started && scheduled.get(String(started.scheduledEventId)) === activityType ? [Number(started.attempt)] : [];
  });
}
