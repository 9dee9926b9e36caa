/**
 * Idempotency-Key (IETF draft-ietf-httpapi-idempotency-key-header) for mutating endpoints.
 *
 * PostgreSQL is the source of truth: the first request with a key inserts a PROCESSING record
 * (the insert is the lock); its outcome is stored when the response is sent. Redis caches
 * completed outcomes as a fast path only: when Redis is down or empty, the database answers.
 *
 *   same key, same request, completed    -> the stored response is replayed
 *   same key, different request          -> 422 IDEMPOTENCY_KEY_REUSED
 *   same key while the first still runs  -> 409 IDEMPOTENCY_REQUEST_IN_PROGRESS
 *   the first attempt failed (5xx) or died (its lock passed) -> the request runs again
 *   records expire after IDEMPOTENCY_TTL_HOURS; a cleanup job deletes them
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { sql, type Kysely } from 'kysely';
import type { SharedTables } from '../../lib/shared-tables';

export interface IdempotencySettings {
  /** Distinguishes services sharing one Redis. */
  namespace: string;
  ttlHours: number;
  lockSeconds: number;
}

export interface StoredResponse {
  statusCode: number;
  body: unknown;
}

export type BeginOutcome =
  | { kind: 'proceed' }
  | { kind: 'replay'; response: StoredResponse }
  | { kind: 'in-progress'; retryAfterSeconds: number }
  | { kind: 'mismatch' };

interface CachedOutcome extends StoredResponse {
  requestHash: string;
}

/** Canonical JSON (sorted keys), so the same request always hashes the same. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export function requestFingerprint(request: { method: string; route: string; params: unknown; query: unknown; body: unknown }): string {
  return createHash('sha256').update(canonical(request)).digest('hex');
}

export class IdempotencyStore {
  private readonly db: Kysely<SharedTables>;

  constructor(
    db: Kysely<SharedTables>,
    private readonly redis: Redis,
    private readonly settings: IdempotencySettings,
    private readonly onRedisError: (error: unknown) => void = () => undefined,
  ) {
    this.db = db;
  }

  private cacheKey(key: string): string {
    return `oms:idempotency:${this.settings.namespace}:${key}`;
  }

  private async cached(key: string): Promise<CachedOutcome | undefined> {
    try {
      const raw = await this.redis.get(this.cacheKey(key));
      return raw ? (JSON.parse(raw) as CachedOutcome) : undefined;
    } catch (error) {
      this.onRedisError(error);
      return undefined;
    }
  }

  /** Claims the key for this request, or says what to answer instead. */
  async begin(key: string, requestHash: string, method: string, path: string): Promise<BeginOutcome> {
    const cached = await this.cached(key);
    if (cached) {
      return cached.requestHash === requestHash ? { kind: 'replay', response: { statusCode: cached.statusCode, body: cached.body } } : { kind: 'mismatch' };
    }
    const lockedUntil = sql<Date>`now() + make_interval(secs => ${this.settings.lockSeconds})`;
    const expiresAt = sql<Date>`now() + make_interval(hours => ${this.settings.ttlHours})`;
    const inserted = await this.db
      .insertInto('idempotency_records')
      .values({
        idempotency_key: key,
        request_hash: requestHash,
        request_method: method,
        request_path: path,
        status: 'PROCESSING',
        locked_until: lockedUntil,
        expires_at: expiresAt,
      })
      .onConflict((oc) => oc.column('idempotency_key').doNothing())
      .returning('idempotency_key')
      .executeTakeFirst();
    if (inserted) return { kind: 'proceed' };

    // The key exists. Take it over when its record has expired (a new request, whatever it is),
    // or when it is ours to retry: the same request whose attempt failed or whose lock passed.
    const takenOver = await this.db
      .updateTable('idempotency_records')
      .set({
        request_hash: requestHash,
        request_method: method,
        request_path: path,
        status: 'PROCESSING',
        response_status: null,
        response_data: null,
        completed_at: null,
        error_message: null,
        locked_until: lockedUntil,
        expires_at: expiresAt,
      })
      .where('idempotency_key', '=', key)
      .where((eb) =>
        eb.or([
          eb('expires_at', '<=', sql<Date>`now()`),
          eb.and([
            eb('request_hash', '=', requestHash),
            eb.or([eb('status', '=', 'FAILED'), eb.and([eb('status', '=', 'PROCESSING'), eb('locked_until', '<=', sql<Date>`now()`)])]),
          ]),
        ]),
      )
      .returning('idempotency_key')
      .executeTakeFirst();
    if (takenOver) return { kind: 'proceed' };

    const existing = await this.db
      .selectFrom('idempotency_records')
      .select(['request_hash', 'status', 'response_status', 'response_data', 'locked_until'])
      .where('idempotency_key', '=', key)
      .executeTakeFirst();
    // Deleted by cleanup between our statements: claim it afresh.
    if (!existing) return this.begin(key, requestHash, method, path);
    if (existing.request_hash !== requestHash) return { kind: 'mismatch' };
    if (existing.status === 'COMPLETED' && existing.response_status !== null) {
      const response = { statusCode: existing.response_status, body: existing.response_data };
      await this.cache(key, requestHash, response);
      return { kind: 'replay', response };
    }
    const retryAfterSeconds = Math.max(1, Math.ceil((existing.locked_until.getTime() - Date.now()) / 1000));
    return { kind: 'in-progress', retryAfterSeconds };
  }

  /** Stores the outcome the client received, so a retry with the same key gets the same answer. */
  async complete(key: string, requestHash: string, response: StoredResponse): Promise<void> {
    await this.db
      .updateTable('idempotency_records')
      .set({
        status: 'COMPLETED',
        response_status: response.statusCode,
        response_data: JSON.stringify(response.body ?? null),
        completed_at: sql<Date>`now()`,
      })
      .where('idempotency_key', '=', key)
      .where('request_hash', '=', requestHash)
      .where('status', '=', 'PROCESSING')
      .execute();
    await this.cache(key, requestHash, response);
  }

  /** Marks a server-side failure: the client may retry with the same key. */
  async fail(key: string, requestHash: string, message: string): Promise<void> {
    await this.db
      .updateTable('idempotency_records')
      .set({ status: 'FAILED', error_message: message.slice(0, 2_000) })
      .where('idempotency_key', '=', key)
      .where('request_hash', '=', requestHash)
      .where('status', '=', 'PROCESSING')
      .execute();
  }

  private async cache(key: string, requestHash: string, response: StoredResponse): Promise<void> {
    try {
      const outcome: CachedOutcome = { requestHash, ...response };
      await this.redis.set(this.cacheKey(key), JSON.stringify(outcome), 'EX', this.settings.ttlHours * 3600);
    } catch (error) {
      this.onRedisError(error);
    }
  }

  /** Deletes expired records; the cleanup job calls it. Returns how many went. */
  async deleteExpired(): Promise<number> {
    const result = await this.db.deleteFrom('idempotency_records').where('expires_at', '<=', sql<Date>`now()`).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}

/** Builds the store over any service database (they all have idempotency_records). */
export function createIdempotencyStore<DB extends SharedTables>(
  db: Kysely<DB>,
  redis: Redis,
  settings: IdempotencySettings,
  onRedisError?: (error: unknown) => void,
): IdempotencyStore {
  return new IdempotencyStore(db as unknown as Kysely<SharedTables>, redis, settings, onRedisError);
}
