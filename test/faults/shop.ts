/**
 * Load through the public API of the fault suite's private stack (the shop of test/helpers/shop.ts):
 * three products and a customer, then orders placed with POST /orders and followed with
 * GET /orders/:id until each reaches its end state. Every request is retried until answered, as a
 * real client retries through a crash; `retries` counts what the faults cost the clients.
 */
import { randomUUID } from 'node:crypto';
import { signAccessToken } from '../../infra/dev-auth';
import { orderStatuses, requestUntilAnswered, statusesOnceAllIn, stockShop, type ClientRetries } from '../helpers/shop';
import type { PrivateStack } from './private-stack';

/** Order statuses no saga moves on from by itself. */
export const END_STATUSES = new Set(['PAID', 'FAILED', 'CANCELLED', 'COMPENSATION_FAILED']);

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
  const endpoints = {
    order: config.ORDER_SERVICE_URL,
    product: `http://127.0.0.1:${config.PRODUCT_SERVICE_PORT}`,
    payment: `http://127.0.0.1:${config.PAYMENT_SERVICE_PORT}`,
  };
  const retries: ClientRetries = { count: 0 };
  const stock = { title: 'Fault suite', skuPrefix: 'FAULT', runId: `${label}-${randomUUID().slice(0, 8)}`, products: 3, units, price: '5.00', balance: balance ?? `${units * 3 * 5}.00` };
  const { customerId, productIds } = await stockShop(endpoints, asOperator, stock, retries);
  const asCustomer = { authorization: `Bearer ${await signAccessToken(key, { customerId }, settings)}` };
  // Followed as an operator's console would: a customer polling every order each second would meet
  // the per-customer rate limit, which the customer's own orders and cancels must not.
  const statuses = (orderIds: readonly string[]) => orderStatuses(endpoints.order, asOperator, orderIds);

  return {
    customerId,
    productIds,
    retries,
    placeOrder: async (random) => {
      const first = productIds[Math.floor(random() * 3)]!;
      const chosen = random() < 0.5 ? [first] : [first, productIds.find((id) => id !== first)!];
      const items = chosen.map((productId) => ({ productId, quantity: 1 + Math.floor(random() * 3) }));
      const answer = await requestUntilAnswered<{ id: string }>('POST', `${endpoints.order}/orders`, asCustomer, { items }, { retries });
      if (answer.status !== 202) throw new Error(`order refused: ${answer.status} ${JSON.stringify(answer.body)}`);
      return answer.body.id;
    },
    cancelOrder: async (orderId) => {
      const answer = await requestUntilAnswered('POST', `${endpoints.order}/orders/${orderId}/cancel`, asCustomer, { reason: 'fault suite' }, { retries });
      if (answer.status !== 202) throw new Error(`cancel of ${orderId} refused: ${answer.status} ${JSON.stringify(answer.body)}`);
    },
    statuses,
    settled: (orderIds, timeoutMs, wanted = END_STATUSES) => statusesOnceAllIn(endpoints.order, asOperator, orderIds, wanted, timeoutMs),
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
