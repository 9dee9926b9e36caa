/**
 * The Temporal server restarts while sagas run. Its state is in PostgreSQL: once it is back, the
 * workers' polls reconnect, timers and retries fire, and every saga resumes where it was. Orders
 * placed while it is down are retried by the client with their Idempotency-Key until the order
 * service can start their saga again.
 */
import { describe, expect, it } from 'vitest';
import { checkInvariants, infra, openSagas, openShop, placeOrdersWhile, shopLedger } from './system';

describe('the Temporal server restarted', () => {
  it('resumes every saga', { timeout: 900_000 }, async () => {
    const orders = 30;
    const shop = await openShop('temporal', orders);
    let inFlight = 0;
    const orderIds = await placeOrdersWhile(shop, orders, 3, 10, async (accepted) => {
      inFlight = (await openSagas(accepted)).length;
      await infra('stack', 'restart', 'temporal');
    });
    expect(inFlight).toBeGreaterThan(0);

    const statuses = await shop.settled(orderIds, 600_000);
    expect([...statuses.values()].every((status) => status === 'PAID')).toBe(true);
    expect(await shopLedger(shop)).toEqual({ orders, stock: 0, balanceMinor: 0, payments: orders });
    expect((await checkInvariants(300)).violations).toEqual([]);
  });
});
