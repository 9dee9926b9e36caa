/**
 * Load through the public API of the fault suite's private stack, as customers and an operator
 * drive it: products created on the product service, a customer on the order service with an
 * account on the payment service, then orders placed with POST /orders and followed with
 * GET /orders/:id until each reaches its end state. Every request is retried, with the same
 * Idempotency-Key, until the service answers with something other than a 5xx or a network error,
 * as a real client retries through a crash: the key makes a repeat answer with the first answer.
 */
import { randomUUID } from 'node:crypto';
import { signAccessToken } from '../../infra/dev-auth';
import { eventually } from '../helpers/kafka-probe';
import type { PrivateStack } from './private-stack';

type Headers = Record<string, string>;
interface Answer<T> {
  status: number;
  body: T;
}

/** Order statuses no saga moves on from by itself. */
export const END_STATUSES = new Set(['PAID', 'FAILED', 'CANCELLED', 'COMPENSATION_FAILED']);

async function request<T>(method: string, url: string, headers: Headers, body?: unknown): Promise<Answer<T>> {
  const response = await fetch(url, {
    method,
    headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  return { status: response.status, body: (await response.json()) as T };
}

/** The retries a client made before an answer, over all requests of a shop (what the faults cost the clients). */
export interface ClientRetries {
  count: number;
}

async function requestUntilAnswered<T>(retries: ClientRetries, method: string, url: string, headers: Headers, body: unknown, timeoutMs = 180_000): Promise<Answer<T>> {
  const key = randomUUID();
  let attempts = 0;
  const answer = await eventually(
    async () => {
      attempts += 1;
      const answered = await request<T>(method, url, { ...headers, 'idempotency-key': key }, body).catch(() => undefined);
      // 409 IDEMPOTENCY_REQUEST_IN_PROGRESS: a crashed instance held the key; its lock passes.
      // 429: a client waits and sends again.
      const inProgress = answered?.status === 409 && JSON.stringify(answered.body).includes('IDEMPOTENCY_REQUEST_IN_PROGRESS');
      return answered && answered.status < 500 && answered.status !== 429 && !inProgress ? answered : undefined;
    },
    timeoutMs,
    `${method} ${url} to be answered`,
    250,
  );
  retries.count += attempts - 1;
  return answer;
}

export interface Shop {
  customerId: string;
  productIds: string[];
  retries: ClientRetries;
  /** Places one order of one or two lines (one to three units each), chosen by `random`; its id once accepted (202). */
  placeOrder: (random: () => number) => Promise<string>;
  /** Asks for the order's cancellation; resolves once accepted (202). */
  cancelOrder: (orderId: string) => Promise<void>;
  statuses: (orderIds: readonly string[]) => Promise<Map<string, string>>;
  /** Each order's status once every one has reached `wanted` (default: any end status). */
  settled: (orderIds: readonly string[], timeoutMs: number, wanted?: ReadonlySet<string>) => Promise<Map<string, string>>;
}

/**
 * Three products with `units` each at 5.00, and a customer whose account holds `balance`
 * (default: enough for every unit).
 */
export async function openShop(stack: PrivateStack, label: string, { units, balance }: { units: number; balance?: string }): Promise<Shop> {
  const { config } = stack;
  const key = stack.signingKey();
  const settings = { issuer: config.AUTH_JWT_ISSUER, audience: config.AUTH_JWT_AUDIENCE, ttlSeconds: 3_600 };
  const asOperator = { authorization: `Bearer ${await signAccessToken(key, { operator: `fault-suite-${label}` }, settings)}` };
  // The test reaches the participants directly, not through the proxies the worker's calls cross.
  const productService = `http://127.0.0.1:${config.PRODUCT_SERVICE_PORT}`;
  const paymentService = `http://127.0.0.1:${config.PAYMENT_SERVICE_PORT}`;
  const retries: ClientRetries = { count: 0 };
  const runId = `${label}-${randomUUID().slice(0, 8)}`;

  const productIds: string[] = [];
  for (const index of [1, 2, 3]) {
    const product = await requestUntilAnswered<{ id: string }>(retries, 'POST', `${productService}/products`, asOperator, {
      sku: `FAULT-${runId}-${index}`,
      name: `Fault suite ${runId} #${index}`,
      price: '5.00',
      currency: 'USD',
      stockQuantity: units,
    });
    if (product.status !== 201) throw new Error(`could not create a product: ${JSON.stringify(product)}`);
    productIds.push(product.body.id);
  }
  const customer = await requestUntilAnswered<{ id: string }>(retries, 'POST', `${config.ORDER_SERVICE_URL}/customers`, asOperator, {
    name: `Fault suite ${runId}`,
    email: `${runId}@example.com`,
  });
  if (customer.status !== 201) throw new Error(`could not create the customer: ${JSON.stringify(customer)}`);
  const account = await requestUntilAnswered(retries, 'POST', `${paymentService}/accounts`, asOperator, {
    customerId: customer.body.id,
    balance: balance ?? `${units * 3 * 5}.00`,
    currency: 'USD',
  });
  if (account.status !== 201) throw new Error(`could not open the account: ${JSON.stringify(account)}`);
  const asCustomer = { authorization: `Bearer ${await signAccessToken(key, { customerId: customer.body.id }, settings)}` };

  // Followed as an operator's console would: a customer polling every order each second would meet
  // the per-customer rate limit, which the customer's own orders and cancels must not.
  const statuses = async (orderIds: readonly string[]) => {
    const found = new Map<string, string>();
    for (const id of orderIds) {
      const answer = await request<{ status: string }>('GET', `${config.ORDER_SERVICE_URL}/orders/${id}`, asOperator).catch(() => undefined);
      if (answer?.status === 200) found.set(id, answer.body.status);
    }
    return found;
  };

  return {
    customerId: customer.body.id,
    productIds,
    retries,
    placeOrder: async (random) => {
      const first = productIds[Math.floor(random() * 3)]!;
      const chosen = random() < 0.5 ? [first] : [first, productIds.find((id) => id !== first)!];
      const items = chosen.map((productId) => ({ productId, quantity: 1 + Math.floor(random() * 3) }));
      const answer = await requestUntilAnswered<{ id: string }>(retries, 'POST', `${config.ORDER_SERVICE_URL}/orders`, asCustomer, { items });
      if (answer.status !== 202) throw new Error(`order refused: ${answer.status} ${JSON.stringify(answer.body)}`);
      return answer.body.id;
    },
    cancelOrder: async (orderId) => {
      const answer = await requestUntilAnswered(retries, 'POST', `${config.ORDER_SERVICE_URL}/orders/${orderId}/cancel`, asCustomer, { reason: 'fault suite' });
      if (answer.status !== 202) throw new Error(`cancel of ${orderId} refused: ${answer.status} ${JSON.stringify(answer.body)}`);
    },
    statuses,
    settled: (orderIds, timeoutMs, wanted = END_STATUSES) =>
      eventually(
        async () => {
          const found = await statuses(orderIds);
          return [...found.values()].filter((status) => wanted.has(status)).length === orderIds.length ? found : undefined;
        },
        timeoutMs,
        `${orderIds.length} orders to reach ${[...wanted].join(' or ')}`,
        1_000,
      ),
  };
}

/**
 * Places `count` orders, `concurrency` at a time. Once `faultAfter` have been accepted, `fault` runs
 * (once) beside the rest of the load, given the ids accepted so far; resolves with every order's id
 * when both the load and the fault are done.
 */
export async function placeOrdersDuring(
  shop: Shop,
  random: () => number,
  { count, concurrency = 3, faultAfter }: { count: number; concurrency?: number; faultAfter: number },
  fault: (accepted: readonly string[]) => Promise<void>,
): Promise<string[]> {
  const ids: string[] = [];
  let placed = 0;
  let injected: Promise<void> | undefined;
  const inject = () => {
    injected ??= fault([...ids]);
  };
  if (faultAfter <= 0) inject();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (placed < count) {
        placed += 1;
        ids.push(await shop.placeOrder(random));
        if (ids.length >= faultAfter) inject();
      }
    }),
  );
  inject();
  await injected;
  return ids;
}

/** Counts statuses: { PAID: 11, FAILED: 1 }. */
export function countStatuses(statuses: Map<string, string>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const status of statuses.values()) counts[status] = (counts[status] ?? 0) + 1;
  return counts;
}
