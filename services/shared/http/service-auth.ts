/**
 * Static credentials of the OMS processes that call each other's internal endpoints. Each caller
 * has its own credential and only the scopes it needs, so a leaked worker credential can move
 * stock and money through the TCC steps of orders, but cannot open accounts, create products or
 * refund arbitrary payments: those are operator actions (a JWT, see auth.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Config } from '../../../lib/config';
import type { Principal } from './principal';

/** What an internal endpoint may demand of a service caller; operators hold every scope. */
export const SERVICE_SCOPES = {
  /** Stock TCC: POST /stock/try, /stock/confirm/:orderId, /stock/cancel/:orderId. */
  stockReserve: 'stock:reserve',
  /** POST /stock/restock/:orderId: put a cancelled paid order's units back. */
  stockRestock: 'stock:restock',
  /** Payment TCC: POST /payments/try, /payments/confirm/:id, /payments/cancel/:id, /payments/cancel-by-order/:orderId. */
  paymentsReserve: 'payments:reserve',
  /** POST /payments/refund-by-order/:orderId: the cancelOrder saga's refund of what the order paid. */
  paymentsRefundOrder: 'payments:refund-order',
} as const;

export type ServiceScope = (typeof SERVICE_SCOPES)[keyof typeof SERVICE_SCOPES];

export interface ServiceCaller {
  name: string;
  credential: string;
  scopes: readonly ServiceScope[];
}

/** Every process that holds a static credential, and what it may do. */
export function serviceCallers(config: Pick<Config, 'WORKER_SERVICE_TOKEN'>): ServiceCaller[] {
  return [
    {
      // The saga worker's activities (activities/stock.ts, activities/payment.ts).
      name: 'saga-worker',
      credential: config.WORKER_SERVICE_TOKEN,
      scopes: [SERVICE_SCOPES.stockReserve, SERVICE_SCOPES.stockRestock, SERVICE_SCOPES.paymentsReserve, SERVICE_SCOPES.paymentsRefundOrder],
    },
  ];
}

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * Returns a function that finds the caller a presented bearer value belongs to, or undefined.
 * Digests of equal length are compared in constant time, and every caller is compared, so the
 * response time says nothing about how much of a credential was right or whose it was.
 */
export function serviceCredentialMatcher(callers: readonly ServiceCaller[]): (presented: string) => Extract<Principal, { kind: 'service' }> | undefined {
  const known = callers.map((caller) => ({ caller, digest: digest(caller.credential) }));
  return (presented) => {
    const candidate = digest(presented);
    let match: ServiceCaller | undefined;
    for (const { caller, digest: expected } of known) {
      if (timingSafeEqual(candidate, expected)) match = caller;
    }
    return match ? { kind: 'service', name: match.name, scopes: match.scopes } : undefined;
  };
}
