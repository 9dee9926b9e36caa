/** Dependency checks for GET /health. Each resolves when the dependency answers. */
import type { Client } from '@temporalio/client';
import { sql, type Kysely } from 'kysely';
import type { Redis } from 'ioredis';
import type { HealthCheck } from './http/health';

export function postgresCheck<DB>(db: Kysely<DB>): HealthCheck {
  return { name: 'postgres', check: () => sql`SELECT 1`.execute(db) };
}

export function redisCheck(redis: Redis): HealthCheck {
  return { name: 'redis', check: () => redis.ping() };
}

/** Temporal counts as up when its frontend answers and our namespace exists. */
export function temporalCheck(client: Client): HealthCheck {
  return {
    name: 'temporal',
    check: () => client.workflowService.describeNamespace({ namespace: client.options.namespace }),
  };
}

/** A peer service counts as up when its liveness endpoint answers; its own dependencies are its own /health's business. */
export function peerServiceCheck(name: string, baseUrl: string): HealthCheck {
  return {
    name,
    check: async () => {
      const response = await fetch(new URL('/health/live', baseUrl), { signal: AbortSignal.timeout(2_000) });
      if (!response.ok) throw new Error(`${name} answered ${response.status}`);
    },
  };
}
