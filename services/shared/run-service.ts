/**
 * Entry-point plumbing shared by the three services: configuration, database (migrated to the
 * latest schema before the port opens), Redis, logging, metrics, listen, graceful shutdown.
 */
import type { Kysely } from 'kysely';
import type { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import type { Registry } from 'prom-client';
import { openMigrationDatabase, openServiceDatabase, type DatabaseByService } from '../../db/databases';
import { migrateToLatest, type ServiceName } from '../../db/migrator';
import { loadConfig, type Config } from '../../lib/config';
import type { ServiceApp } from './http/app';
import { loggerOptions } from '../../lib/logger';
import { createMetricsRegistry } from '../../lib/metrics';
import { onShutdown, type Closer } from './process';
import { createRedis } from '../../lib/redis';

export interface ServiceContext<S extends ServiceName> {
  config: Config;
  db: Kysely<DatabaseByService[S]>;
  redis: Redis;
  logger: Logger;
  metrics: Registry;
}

export interface RunServiceOptions<S extends ServiceName> {
  service: S;
  port: (config: Config) => number;
  build: (context: ServiceContext<S>) => Promise<{ app: ServiceApp; closers?: Closer[] }>;
}

export async function runService<S extends ServiceName>({ service, port, build }: RunServiceOptions<S>): Promise<void> {
  const config = loadConfig();
  const logger = pino(loggerOptions(config, `${service}-service`));
  // Migrations on a connection of their own: the serving pool's statement and lock timeouts would cut a long one short.
  const migrationDb = openMigrationDatabase(config, service);
  try {
    const { results = [], privileges } = await migrateToLatest(migrationDb, service);
    for (const migration of results) logger.info({ migration: migration.migrationName, status: migration.status }, 'migration');
    if (privileges === 'worker-role-missing') logger.warn('role oms_worker does not exist: the worker cannot use this database until db/provision.ts has run');
  } finally {
    await migrationDb.destroy();
  }
  const db = openServiceDatabase(config, service);
  const redis = createRedis(config);
  redis.on('error', (error: Error) => logger.warn({ err: error.message }, 'redis unavailable; using the database path'));
  const metrics = createMetricsRegistry(`${service}-service`);

  const { app, closers = [] } = await build({ config, db, redis, logger, metrics });
  await app.listen({ host: config.HOST, port: port(config) });
  onShutdown(logger, [() => app.close(), ...closers, () => db.destroy(), () => redis.quit()]);
}

/** Runs `main` and exits non-zero with the reason if start-up fails (bad config, database down, port taken). */
export function startOrExit(main: () => Promise<void>): void {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exit(1);
  });
}
