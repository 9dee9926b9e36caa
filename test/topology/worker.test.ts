/**
 * One of the two workers dies (SIGKILL) with sagas in flight: killed once a saga it has worked on is
 * still open. Its workflow and activity tasks go back to the task queue when their timeouts expire,
 * the other worker picks them up, and every saga finishes: each order PAID and every invariant
 * holding while the dead worker is still down, and the histories show the dead worker's sagas
 * finished by the other.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/kafka-probe';
import { checkInvariants, crash, infra, openSagas, openShop, pidOf, placeOrdersWhile, sagaWorkerIdentities } from './system';

describe('a worker killed with sagas in flight', () => {
  afterAll(async () => {
    await infra('apps', 'start', 'worker-1');
  });

  it('lets the other worker finish its sagas', { timeout: 900_000 }, async () => {
    const shop = await openShop('worker', 30);
    const doomed = pidOf('worker-1');
    const byDoomed = (identity: string) => identity.endsWith(`:${doomed}`);
    let started: string[] = [];
    const orderIds = await placeOrdersWhile(shop, 30, 3, 6, async (accepted) => {
      // Open sagas worker-1 has worked on; then kill it, and keep those still open after the kill.
      const touched = await eventually(
        async () => {
          const found = [];
          for (const id of await openSagas(accepted)) if ((await sagaWorkerIdentities(id).catch(() => [])).some(byDoomed)) found.push(id);
          return found.length > 0 ? found : undefined;
        },
        120_000,
        'an open saga worker-1 has worked on',
        200,
      );
      crash('worker-1');
      started = await openSagas(touched);
    });
    expect(started.length).toBeGreaterThan(0);

    const statuses = await shop.settled(orderIds, 600_000);
    expect([...statuses.values()].every((status) => status === 'PAID')).toBe(true);
    expect((await checkInvariants(300)).violations).toEqual([]);
    // Open at the kill and closed now: the rest of each of those sagas was the other worker's.
    for (const orderId of started) {
      const identities = await sagaWorkerIdentities(orderId, { whenClosed: true });
      expect(identities.slice(identities.findLastIndex(byDoomed) + 1).some((identity) => !byDoomed(identity)), orderId).toBe(true);
    }
  });
});
