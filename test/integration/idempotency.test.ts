import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdempotencyStore } from '../../services/shared/idempotency';
import { idempotencyStoreKey } from '../../services/shared/http/idempotency-plugin';
import type { Principal } from '../../services/shared/http/principal';
import { testOperator, testWorker } from '../helpers/auth';
import { createTestProduct, createTestProductService, stockOf, type TestProductService, refuseForcedOrderReservations } from '../helpers/product-service';

/** A local port nothing listens on: a Redis there is a Redis that is down. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/**
 * The Idempotency-Key rules (IETF draft), exercised on the product service's mutating endpoints
 * against real PostgreSQL and Redis, then again with Redis down to show PostgreSQL alone is enough.
 */
function idempotencySuite(name: string, options: { redisDown: boolean }) {
  describe(name, () => {
    let service: TestProductService;

    beforeAll(async () => {
      service = await createTestProductService({
        overrides: { RESERVATION_SWEEP_INTERVAL_MS: '3600000' },
        ...(options.redisDown ? { redisUrl: `redis://127.0.0.1:${await closedPort()}` } : {}),
      });
    });
    afterAll(() => service.close());

    const post = (url: string, key: string | undefined, payload?: Record<string, unknown>, auth = service.authFor(url)) =>
      service.app.inject({ method: 'POST', url, headers: { ...auth, ...(key ? { 'idempotency-key': key } : {}) }, ...(payload ? { payload } : {}) });
    const productBody = (sku: string) => ({ sku, name: 'Idempotent widget', price: '9.99', currency: 'USD', stockQuantity: 5 });
    const countProducts = async (sku: string) =>
      Number((await service.db.selectFrom('products').select((eb) => eb.fn.countAll<string>().as('n')).where('sku', '=', sku).executeTakeFirstOrThrow()).n);
    // Keys are stored within their caller's key space: the operator's for products, the worker's for /stock/*.
    const storedKey = (key: string, caller: Principal = testOperator) => idempotencyStoreKey(caller, key);
    const recordOf = (key: string, caller?: Principal) =>
      service.db.selectFrom('idempotency_records').selectAll().where('idempotency_key', '=', storedKey(key, caller)).executeTakeFirst();

    if (options.redisDown) {
      it('really has no Redis: /health reports it down', async () => {
        const health = await service.app.inject({ method: 'GET', url: '/health' });
        expect(health.statusCode).toBe(503);
        expect(health.json()).toMatchObject({ checks: { redis: { status: 'DOWN' }, postgres: { status: 'UP' } } });
      });
    }

    it('same key and same body: the stored response is replayed (idempotent-replayed) and the product is created once', async () => {
      const key = randomUUID();
      const sku = `IDEM-${randomUUID().slice(0, 8)}`;
      const first = await post('/products', key, productBody(sku));
      expect(first.statusCode).toBe(201);
      expect(first.headers['idempotent-replayed']).toBeUndefined();

      const second = await post('/products', key, productBody(sku));
      expect(second.statusCode).toBe(201);
      expect(second.headers['idempotent-replayed']).toBe('true');
      expect(second.json()).toEqual(first.json());
      expect(await countProducts(sku)).toBe(1);
      expect(await recordOf(key)).toMatchObject({ status: 'COMPLETED', response_status: 201 });
      // With Redis up the outcome is cached there too (the fast path); with it down only PostgreSQL has it.
      const cached = await service.redis.get(`oms:idempotency:product:${storedKey(key)}`).catch(() => null);
      expect(cached === null).toBe(options.redisDown);

      // Without the key the same body is a new request: it meets the sku rule instead.
      expect((await post('/products', undefined, productBody(sku))).statusCode).toBe(409);
    });

    it('replays a stock try, confirm and cancel with their original status, without a second effect', async () => {
      const productId = await createTestProduct(service, { stockQuantity: 10 });
      const orderId = randomUUID();
      const tryBody = { orderId, items: [{ productId, quantity: 3 }] };
      const tryKey = randomUUID();
      const tried = await post('/stock/try', tryKey, tryBody);
      expect(tried.statusCode).toBe(201);
      const replayed = await post('/stock/try', tryKey, tryBody);
      expect(replayed.statusCode).toBe(201); // the stored answer, not the 200 of a repeated try
      expect(replayed.headers['idempotent-replayed']).toBe('true');
      expect(replayed.json()).toEqual(tried.json());

      const confirmKey = randomUUID();
      const confirmed = await post(`/stock/confirm/${orderId}`, confirmKey);
      expect(confirmed.statusCode).toBe(200);
      const confirmedAgain = await post(`/stock/confirm/${orderId}`, confirmKey);
      expect(confirmedAgain.headers['idempotent-replayed']).toBe('true');
      expect(confirmedAgain.json()).toEqual(confirmed.json());
      expect(await stockOf(service.db, productId)).toEqual({ stock: 7, reserved: 0, available: 7 });

      // A refusal is an answer too: replayed as it was.
      const cancelKey = randomUUID();
      const refused = await post(`/stock/cancel/${orderId}`, cancelKey);
      expect(refused.statusCode).toBe(409);
      const refusedAgain = await post(`/stock/cancel/${orderId}`, cancelKey);
      expect(refusedAgain.statusCode).toBe(409);
      expect(refusedAgain.headers['idempotent-replayed']).toBe('true');
      expect(refusedAgain.json()).toEqual(refused.json());
    });

    it('same key with a different body: 422 IDEMPOTENCY_KEY_REUSED and nothing changes', async () => {
      const key = randomUUID();
      const sku = `IDEM-${randomUUID().slice(0, 8)}`;
      expect((await post('/products', key, productBody(sku))).statusCode).toBe(201);
      const otherSku = `IDEM-${randomUUID().slice(0, 8)}`;
      const reused = await post('/products', key, productBody(otherSku));
      expect(reused.statusCode).toBe(422);
      expect(reused.json()).toMatchObject({ error: { code: 'IDEMPOTENCY_KEY_REUSED' } });
      expect(await countProducts(otherSku)).toBe(0);
      // The same key on another endpoint is another request as well.
      const elsewhere = await post(`/stock/cancel/${randomUUID()}`, key, undefined, service.operator);
      expect(elsewhere.statusCode).toBe(422);
      // The same key from another caller is that caller's own key: it runs.
      const otherCaller = await post(`/stock/cancel/${randomUUID()}`, key, undefined, service.worker);
      expect(otherCaller.statusCode).toBe(200);
    });

    it('a request refused by validation does not claim its key', async () => {
      const key = randomUUID();
      const sku = `IDEM-${randomUUID().slice(0, 8)}`;
      const invalid = await post('/products', key, { ...productBody(sku), price: '1.999' });
      expect(invalid.statusCode).toBe(400);
      expect(await recordOf(key)).toBeUndefined();
      expect((await post('/products', key, productBody(sku))).statusCode).toBe(201);
    });

    it('an invalid Idempotency-Key header is 400 INVALID_IDEMPOTENCY_KEY', async () => {
      const response = await post('/products', 'k'.repeat(256), productBody(`IDEM-${randomUUID().slice(0, 8)}`));
      expect(response.statusCode).toBe(400);
      expect(response.json()).toMatchObject({ error: { code: 'INVALID_IDEMPOTENCY_KEY' } });
    });

    it('same key while the first request still runs: 409 IDEMPOTENCY_REQUEST_IN_PROGRESS; afterwards the outcome is replayed', async () => {
      const productId = await createTestProduct(service, { stockQuantity: 4 });
      const key = randomUUID();
      const body = { orderId: randomUUID(), items: [{ productId, quantity: 1 }] };

      // A concurrent transaction holds the product's row lock, so the first try waits inside its transaction.
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      let locked!: () => void;
      const isLocked = new Promise<void>((resolve) => (locked = resolve));
      const holder = service.db.transaction().execute(async (trx) => {
        await trx.selectFrom('products').select('id').where('id', '=', productId).forUpdate().execute();
        locked();
        await held;
      });
      await isLocked;

      let first: Awaited<ReturnType<typeof post>> | undefined;
      try {
        const firstRequest = post('/stock/try', key, body);
        // Wait until the first request has claimed the key (it is now blocked on the row lock).
        const deadline = Date.now() + 10_000;
        while ((await recordOf(key, testWorker))?.status !== 'PROCESSING' && Date.now() < deadline) await sleep(20);
        expect((await recordOf(key, testWorker))?.status).toBe('PROCESSING');

        const concurrent = await post('/stock/try', key, body);
        expect(concurrent.statusCode).toBe(409);
        expect(concurrent.json()).toMatchObject({ error: { code: 'IDEMPOTENCY_REQUEST_IN_PROGRESS' } });
        expect(Number(concurrent.headers['retry-after'])).toBeGreaterThanOrEqual(1);
        expect((await stockOf(service.db, productId)).reserved).toBe(0);

        release();
        first = await firstRequest;
      } finally {
        release();
        await holder;
      }
      expect(first.statusCode).toBe(201);
      const after = await post('/stock/try', key, body);
      expect(after.statusCode).toBe(201);
      expect(after.headers['idempotent-replayed']).toBe('true');
      expect(after.json()).toEqual(first.json());
      expect(await stockOf(service.db, productId)).toEqual({ stock: 4, reserved: 1, available: 3 });
    });

    it('a failed (5xx) attempt may be retried with the same key, and then its success is replayed', async () => {
      const productId = await createTestProduct(service, { stockQuantity: 4 });
      const key = randomUUID();
      const body = { orderId: `forced-${randomUUID()}`, items: [{ productId, quantity: 2 }] };
      const allowForcedOrders = await refuseForcedOrderReservations(service.db);
      try {
        const failed = await post('/stock/try', key, body);
        expect(failed.statusCode).toBe(500);
        expect(await recordOf(key, testWorker)).toMatchObject({ status: 'FAILED' });
      } finally {
        await allowForcedOrders();
      }
      expect((await stockOf(service.db, productId)).reserved).toBe(0);

      const retried = await post('/stock/try', key, body);
      expect(retried.statusCode).toBe(201);
      expect(retried.headers['idempotent-replayed']).toBeUndefined();
      const replayed = await post('/stock/try', key, body);
      expect(replayed.headers['idempotent-replayed']).toBe('true');
      expect(replayed.json()).toEqual(retried.json());
      expect(await stockOf(service.db, productId)).toEqual({ stock: 4, reserved: 2, available: 2 });
    });

    it('expired records are deleted by deleteExpired; live ones stay', async () => {
      const store = createIdempotencyStore(service.db, service.redis, {
        namespace: 'product',
        ttlHours: service.config.IDEMPOTENCY_TTL_HOURS,
        lockSeconds: service.config.IDEMPOTENCY_LOCK_SECONDS,
      });
      const expiredKey = randomUUID();
      const liveKey = randomUUID();
      await post('/products', expiredKey, productBody(`IDEM-${randomUUID().slice(0, 8)}`));
      await post('/products', liveKey, productBody(`IDEM-${randomUUID().slice(0, 8)}`));
      const live = await recordOf(liveKey);
      // Records live IDEMPOTENCY_TTL_HOURS (24 h by default).
      expect(live!.expires_at.getTime() - live!.created_at.getTime()).toBe(service.config.IDEMPOTENCY_TTL_HOURS * 3_600_000);

      await service.db.updateTable('idempotency_records').set({ expires_at: sql<Date>`now() - interval '1 second'` }).where('idempotency_key', '=', storedKey(expiredKey)).execute();
      expect(await store.deleteExpired()).toBe(1);
      expect(await recordOf(expiredKey)).toBeUndefined();
      expect(await recordOf(liveKey)).toBeDefined();
    });

    if (options.redisDown) {
      it('a key whose record expired is a fresh key again (no cache to say otherwise)', async () => {
        const key = randomUUID();
        const sku = `IDEM-${randomUUID().slice(0, 8)}`;
        await post('/products', key, productBody(sku));
        await service.db.updateTable('idempotency_records').set({ expires_at: sql<Date>`now() - interval '1 second'` }).where('idempotency_key', '=', storedKey(key)).execute();
        const otherSku = `IDEM-${randomUUID().slice(0, 8)}`;
        const reused = await post('/products', key, productBody(otherSku));
        expect(reused.statusCode).toBe(201);
        expect(reused.headers['idempotent-replayed']).toBeUndefined();
        expect(await countProducts(otherSku)).toBe(1);
      });
    }
  });
}

idempotencySuite('Idempotency-Key on the product service (PostgreSQL + Redis)', { redisDown: false });
idempotencySuite('Idempotency-Key on the product service with Redis down (PostgreSQL only)', { redisDown: true });
