/**
 * A shop driven through the public API of a running stack, as an operator and its customers drive
 * it: products created on the product service, a customer on the order service with an account on
 * the payment service, orders followed with GET /orders/:id. The fault suite (test/faults/shop.ts)
 * and the topology suite (test/topology/system.ts) each build their load on it. Every request that
 * changes something is retried, with the same Idempotency-Key, until the service answers with
 * something other than a 5xx, a 429 or a network error, as a real client retries through a crash:
 * the key makes a repeat answer with the first answer instead of acting twice.
 */
import { randomUUID } from 'node:crypto';
import { eventually } from './kafka-probe';

export type Headers = Record<string, string>;

export interface Answer<T> {
  status: number;
  body: T;
}

export async function request<T>(method: string, url: string, headers: Headers, body?: unknown): Promise<Answer<T>> {
  const response = await fetch(url, {
    method,
    headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  return { status: response.status, body: (await response.json()) as T };
}

/** The retries clients made before an answer, over all requests of a shop (what the faults cost the clients). */
export interface ClientRetries {
  count: number;
}

export async function requestUntilAnswered<T>(
  method: string,
  url: string,
  headers: Headers,
  body: unknown,
  { retries, timeoutMs = 180_000 }: { retries?: ClientRetries; timeoutMs?: number } = {},
): Promise<Answer<T>> {
  const key = randomUUID();
  let attempts = 0;
  const answer = await eventually(
    async () => {
      attempts += 1;
      const answered = await request<T>(method, url, { ...headers, 'idempotency-key': key }, body).catch(() => undefined);
      // 409 IDEMPOTENCY_REQUEST_IN_PROGRESS: an instance died holding the key; its lock passes.
      // 429: a client waits and sends again.
      const inProgress = answered?.status === 409 && JSON.stringify(answered.body).includes('IDEMPOTENCY_REQUEST_IN_PROGRESS');
      return answered && answered.status < 500 && answered.status !== 429 && !inProgress ? answered : undefined;
    },
    timeoutMs,
    `${method} ${url} to be answered`,
    250,
  );
  if (retries) retries.count += attempts - 1;
  return answer;
}

/** The base URLs of the three services, as the shop's clients reach them. */
export interface ShopEndpoints {
  order: string;
  product: string;
  payment: string;
}

export interface ShopStock {
  /** Names the suite in the products' and the customer's names: "Fault suite", "Topology". */
  title: string;
  /** Starts each product's SKU: "FAULT", "TOPO". */
  skuPrefix: string;
  /** Unique per shop: in every SKU, name and the customer's e-mail address. */
  runId: string;
  products: number;
  /** Units of stock per product. */
  units: number;
  /** Price of each product, in USD ("5.00"). */
  price: string;
  /** What the customer's account holds, in USD. */
  balance: string;
}

/** The products and the customer (with its account) of a shop, created by `asOperator`. */
export async function stockShop(endpoints: ShopEndpoints, asOperator: Headers, stock: ShopStock, retries?: ClientRetries): Promise<{ customerId: string; productIds: string[] }> {
  const { title, skuPrefix, runId } = stock;
  const productIds: string[] = [];
  for (let index = 1; index <= stock.products; index++) {
    const product = await requestUntilAnswered<{ id: string }>(
      'POST',
      `${endpoints.product}/products`,
      asOperator,
      { sku: `${skuPrefix}-${runId}-${index}`, name: `${title} ${runId} #${index}`, price: stock.price, currency: 'USD', stockQuantity: stock.units },
      { retries },
    );
    if (product.status !== 201) throw new Error(`could not create a product: ${JSON.stringify(product)}`);
    productIds.push(product.body.id);
  }
  const customer = await requestUntilAnswered<{ id: string }>('POST', `${endpoints.order}/customers`, asOperator, { name: `${title} ${runId}`, email: `${runId}@example.com` }, { retries });
  if (customer.status !== 201) throw new Error(`could not create the customer: ${JSON.stringify(customer)}`);
  const account = await requestUntilAnswered('POST', `${endpoints.payment}/accounts`, asOperator, { customerId: customer.body.id, balance: stock.balance, currency: 'USD' }, { retries });
  if (account.status !== 201) throw new Error(`could not open the account: ${JSON.stringify(account)}`);
  return { customerId: customer.body.id, productIds };
}

/**
 * Each order's current status, read with `authorization` (an operator's console, or the customer
 * polling its own orders); an order that does not answer 200 is left out.
 */
export async function orderStatuses(orderService: string, authorization: Headers, orderIds: readonly string[]): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const id of orderIds) {
    const answer = await request<{ status: string }>('GET', `${orderService}/orders/${id}`, authorization).catch(() => undefined);
    if (answer?.status === 200) found.set(id, answer.body.status);
  }
  return found;
}

/** Each order's status, once every one has reached one of `wanted`; polled once a second. */
export function statusesOnceAllIn(orderService: string, authorization: Headers, orderIds: readonly string[], wanted: ReadonlySet<string>, timeoutMs: number): Promise<Map<string, string>> {
  return eventually(
    async () => {
      const found = await orderStatuses(orderService, authorization, orderIds);
      return [...found.values()].filter((status) => wanted.has(status)).length === orderIds.length ? found : undefined;
    },
    timeoutMs,
    `${orderIds.length} orders to reach ${[...wanted].join(' or ')}`,
    1_000,
  );
}
