import { Redis } from 'ioredis';

/**
 * Redis is only ever a fast path in OMS (PostgreSQL is the source of truth), so commands fail fast
 * while it is down instead of queueing: callers fall back to the database.
 */
export function createRedis(url: string): Redis {
  return new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    commandTimeout: 1_000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
  });
}

/** Connects and waits until Redis answers, for callers that need it now (start-up checks, tools). */
export async function connectRedis(url: string): Promise<Redis> {
  const redis = createRedis(url);
  let lastError: Error | undefined;
  const remember = (error: Error) => {
    lastError = error;
  };
  redis.on('error', remember);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        redis.disconnect();
        reject(new Error(`Redis at ${url} not ready within 3 s${lastError ? ` (${lastError.message})` : ''}`));
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
