/** The default path: the stack `./oms test` started as local processes. We only check that it answers. */
import { Connection } from '@temporalio/client';
import pg from 'pg';
import { loadConfig } from '../../lib/config';
import { createKafka } from '../../lib/kafka';
import { connectRedis } from '../../lib/redis';
import type { StackEnv } from './stack-env';

async function reachable(component: string, where: string, probe: () => Promise<unknown>): Promise<void> {
  try {
    await probe();
  } catch (error) {
    throw new Error(
      `${component} is not reachable at ${where} (${error instanceof Error ? error.message : String(error)}).\n` +
        'Integration tests run against the real stack: use ./oms test, which starts it, or start it with ./oms up ' +
        '(or set OMS_TESTCONTAINERS=1 where Docker is available).',
    );
  }
}

export async function useLocalStack(): Promise<StackEnv> {
  const config = loadConfig();
  const env: StackEnv = {
    PG_ADMIN_URL: process.env.PG_ADMIN_URL ?? config.DATABASE_ADMIN_URL,
    PG_HOST: new URL(config.ORDER_DATABASE_URL).host,
    REDIS_URL: config.REDIS_URL,
    KAFKA_BROKERS: config.KAFKA_BROKERS.join(','),
    TEMPORAL_ADDRESS: config.TEMPORAL_ADDRESS,
    TEMPORAL_UI_URL: config.TEMPORAL_UI_URL,
  };
  await reachable('PostgreSQL', env.PG_ADMIN_URL, async () => {
    const client = new pg.Client({ connectionString: env.PG_ADMIN_URL, connectionTimeoutMillis: 3_000 });
    await client.connect();
    await client.end();
  });
  await reachable('Redis', env.REDIS_URL, async () => {
    const redis = await connectRedis(config);
    try {
      await redis.ping();
    } finally {
      redis.disconnect();
    }
  });
  await reachable('Kafka', env.KAFKA_BROKERS, async () => {
    const admin = createKafka(config, 'oms-test-setup').admin();
    await admin.connect();
    await admin.disconnect();
  });
  await reachable('Temporal', env.TEMPORAL_ADDRESS, async () => {
    const connection = await Connection.connect({ address: env.TEMPORAL_ADDRESS, connectTimeout: 3_000 });
    await connection.close();
  });
  return env;
}
