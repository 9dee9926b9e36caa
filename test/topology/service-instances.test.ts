/**
 * One instance of each service dies (SIGKILL) while orders flow through the balancer. Requests
 * never sent to the dead instance go to its twin; a request it died holding fails, and the client
 * repeats it with the same Idempotency-Key, as any client of the API does. Every order is placed
 * once: as many orders, units sold and payments as orders the client asked for, every saga PAID,
 * every invariant holding. The instances are started again afterwards.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { checkInvariants, crash, infra, openShop, placeOrdersWhile, shopLedger } from './system';

const KILLED = ['order-service-1', 'product-service-1', 'payment-service-1'];

describe('one instance of each service killed under load', () => {
  afterAll(async () => {
    await infra('apps', 'start', ...KILLED);
  });

  it('serves every request on the other instances, with no duplicate effect', { timeout: 900_000 }, async () => {
    const orders = 30;
    const shop = await openShop('instances', orders);
    const orderIds = await placeOrdersWhile(shop, orders, 4, 8, async () => {
      for (const name of KILLED) crash(name);
    });
    expect(new Set(orderIds).size).toBe(orders);

    const statuses = await shop.settled(orderIds, 600_000);
    expect([...statuses.values()].every((status) => status === 'PAID')).toBe(true);
    expect(await shopLedger(shop)).toEqual({ orders, stock: 0, balanceMinor: 0, payments: orders });
    expect((await checkInvariants(300)).violations).toEqual([]);
  });
});
