import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import type { Config } from './config';

/** Where Redis is and how to reach it safely: password and TLS come with the URL (redis://:pw@host, rediss://). */
export type RedisConnectionConfig = Pick<Config, 'REDIS_URL' | 'REDIS_TLS_CA_FILE'>;

/**
 * The ioredis options for `config`. A rediss:// URL turns TLS on (server certificate verified against
 * the system CAs, or REDIS_TLS_CA_FILE); a password (and user, for Redis ACLs) in the URL is sent with AUTH.
 * Redis is only ever a fast path in OMS (PostgreSQL is the source of truth), so commands fail fast
 * while it is down instead of queueing: callers fall back to the database.
 */
export function redisOptions(config: RedisConnectionConfig): RedisOptions {
  return {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    commandTimeout: 1_000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    ...(config.REDIS_TLS_CA_FILE ? { tls: { ca: readFileSync(config.REDIS_TLS_CA_FILE, 'utf8') } } : {}),
  };
}

export function createRedis(config: RedisConnectionConfig): Redis {
  return new Redis(config.REDIS_URL, redisOptions(config));
}

/** Connects and waits until Redis answers, for callers that need it now (start-up checks, tools). */
export async function connectRedis(config: RedisConnectionConfig): Promise<Redis> {
  const redis = createRedis(config);
  let lastError: Error | undefined;
  const remember = (error: Error) => {
    lastError = error;
  };
  redis.on('error', remember);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        // A late error of the abandoned client (a command timing out) has nobody to tell.
        redis.on('error', () => undefined);
        redis.disconnect();
        // The URL may carry a password: name the host only.
        reject(new Error(`Redis at ${new URL(config.REDIS_URL).host} not ready within 3 s${lastError ? ` (${lastError.message})` : ''}`));
      }, 3_000);
      redis.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  } finally {
    redis.off('error', remember);
  }
  return redis;
}
