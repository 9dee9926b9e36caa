/**
 * One of the two workers dies (SIGKILL) with sagas in flight. Its workflow and activity tasks go
 * back to the task queue when their timeouts expire, the other worker picks them up, and every
 * saga finishes: each order PAID and every invariant holding while the dead worker is still down,
 * and at least one saga's history shows work by the dead worker, then by the other.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { checkInvariants, crash, infra, openShop, placeOrdersWhile, sagaWorkerIdentities } from './system';

describe('a worker killed with sagas in flight', () => {
  afterAll(async () => {
    await infra('apps', 'start', 'worker-1');
  });

  it('lets the other worker finish its sagas', { timeout: 900_000 }, async () => {
    const shop = await openShop('worker', 30);
    let killedPid = 0;
    let inFlight: string[] = [];
    const orderIds = await placeOrdersWhile(shop, 30, 3, 10, async (accepted) => {
      killedPid = crash('worker-1');
      // Not final after the kill: not final at it either.
      const statuses = await shop.statuses(accepted);
      inFlight = accepted.filter((id) => statuses.get(id) !== 'PAID');
    });
    expect(inFlight.length).toBeGreaterThan(0);

    const statuses = await shop.settled(orderIds, 600_000);
    expect([...statuses.values()].every((status) => status === 'PAID')).toBe(true);
    expect((await checkInvariants(300)).violations).toEqual([]);

    // A saga the dead worker had started and the survivor finished.
    const byDead = (identity: string) => identity.endsWith(`:${killedPid}`);
    const handedOver = [];
    for (const orderId of inFlight) {
      const identities = await sagaWorkerIdentities(orderId);
      const lastByDead = identities.findLastIndex(byDead);
      if (lastByDead >= 0 && identities.slice(lastByDead + 1).some((identity) => !byDead(identity))) handedOver.push(orderId);
    }
    expect(handedOver.length).toBeGreaterThan(0);
  });
});
