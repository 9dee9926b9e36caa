/**
 * Applies the Idempotency-Key semantics (../idempotency.ts) to every route that declares
 * `config: { idempotent: true }`. Runs after validation (preHandler), so a request that fails
 * validation never claims its key; stores the response in onSend, whatever produced it.
 * Keys are per caller: two customers who happen to send the same key are two requests, and
 * neither is ever answered with the other's response.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { createHash } from 'node:crypto';
import { ApiError } from '../errors';
import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import type { SharedTables } from '../../../lib/shared-tables';
import type { Config } from '../../../lib/config';
import type { ServiceApp } from './app';
import { principalKey, type Principal } from './principal';
import { createIdempotencyStore, requestFingerprint, type IdempotencyStore } from '../idempotency';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route honours the Idempotency-Key header. */
    idempotent?: boolean;
  }
  interface FastifyRequest {
    /** `key` as the client sent it; `storeKey` is that key within the caller's own key space. */
    idempotency?: { key: string; storeKey: string; requestHash: string };
  }
}

export const IDEMPOTENCY_HEADER = 'idempotency-key';
const MAX_KEY_LENGTH = 255;

export interface IdempotencyPluginOptions {
  store: IdempotencyStore;
  /** How often expired records are deleted; 0 disables the job (tests run it by hand). */
  cleanupIntervalMs: number;
}

function readKey(request: FastifyRequest): string | undefined {
  const header = request.headers[IDEMPOTENCY_HEADER];
  if (header === undefined) return undefined;
  const key = Array.isArray(header) ? header[0] : header;
  if (!key || key.length > MAX_KEY_LENGTH || !/^[\x21-\x7e]+$/.test(key)) {
    throw new ApiError(400, 'INVALID_IDEMPOTENCY_KEY', `Idempotency-Key must be 1-${MAX_KEY_LENGTH} printable ASCII characters`);
  }
  return key;
}

/**
 * The key as stored: the caller's identity and the client's key. Hashed when that would not fit
 * the 255-character column (a long operator subject with a long key).
 */
export function idempotencyStoreKey(principal: Principal | undefined, key: string): string {
  const scoped = `${principalKey(principal)}/${key}`;
  return scoped.length <= MAX_KEY_LENGTH ? scoped : `sha256:${createHash('sha256').update(scoped).digest('hex')}`;
}

export const idempotencyPlugin = fp(
  (app: FastifyInstance, { store, cleanupIntervalMs }: IdempotencyPluginOptions) => {
    app.addHook('preHandler', async (request, reply) => {
      if (!request.routeOptions.config.idempotent) return;
      const key = readKey(request);
      if (!key) return;
      const route = request.routeOptions.url ?? request.url;
      const requestHash = requestFingerprint({ method: request.method, route, params: request.params, query: request.query, body: request.body });
      const storeKey = idempotencyStoreKey(request.principal, key);
      // The record names the path for operators; the query string (unbounded, and already part of
      // the fingerprint) is left out so that a long URL cannot overflow the column.
      const outcome = await store.begin(storeKey, requestHash, request.method, request.url.split('?', 1)[0]!);
      switch (outcome.kind) {
        case 'proceed':
          request.idempotency = { key, storeKey, requestHash };
          return;
        case 'replay':
          // A string payload skips the route's serializer: the stored body is sent as it was.
          return reply
            .status(outcome.response.statusCode)
            .header('idempotent-replayed', 'true')
            .type('application/json; charset=utf-8')
            .send(JSON.stringify(outcome.response.body));
        case 'in-progress':
          reply.header('retry-after', String(outcome.retryAfterSeconds));
          throw new ApiError(409, 'IDEMPOTENCY_REQUEST_IN_PROGRESS', 'a request with this Idempotency-Key is still being processed; retry later');
        case 'mismatch':
          throw new ApiError(422, 'IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used with a different request');
      }
    });

    app.addHook('onSend', async (request, reply, payload) => {
      const claim = request.idempotency;
      if (!claim) return payload;
      request.idempotency = undefined;
      if (reply.statusCode >= 500) {
        await store.fail(claim.storeKey, claim.requestHash, `answered ${reply.statusCode}`);
        return payload;
      }
      let body: unknown = null;
      if (typeof payload === 'string') {
        try {
          body = JSON.parse(payload);
        } catch {
          body = payload;
        }
      }
      await store.complete(claim.storeKey, claim.requestHash, { statusCode: reply.statusCode, body });
      return payload;
    });

    if (cleanupIntervalMs > 0) {
      const timer = setInterval(() => {
        store.deleteExpired().then(
          (deleted) => deleted > 0 && app.log.info({ deleted }, 'expired idempotency records deleted'),
          (error: unknown) => app.log.error({ err: error }, 'idempotency cleanup failed'),
        );
      }, cleanupIntervalMs);
      timer.unref();
      app.addHook('onClose', async () => clearInterval(timer));
    }
  },
  { name: 'oms-idempotency' },
);

/** How every service wires it: a store over the service's own database, settings from configuration. */
export async function registerIdempotency<DB extends SharedTables>(
  app: ServiceApp,
  { namespace, db, redis, config }: { namespace: string; db: Kysely<DB>; redis: Redis; config: Config },
): Promise<void> {
  const store = createIdempotencyStore(
    db,
    redis,
    { namespace, ttlHours: config.IDEMPOTENCY_TTL_HOURS, lockSeconds: config.IDEMPOTENCY_LOCK_SECONDS },
    (error) => app.log.warn({ err: error }, 'redis unavailable for idempotency; using PostgreSQL'),
  );
  await app.register(idempotencyPlugin, { store, cleanupIntervalMs: config.IDEMPOTENCY_CLEANUP_INTERVAL_MS });
}
