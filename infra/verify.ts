/**
 * `./oms verify` (tsx infra/verify.ts [--services] [--monitoring=PROMETHEUS_URL]): the
 * verify-infrastructure script for this stack. Checks every component answers and does its job, prints a line per check, and exits 1
 * listing what failed.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import { sql } from 'kysely';
import { openServiceDatabase } from '../db/databases';
import { SERVICE_NAMES } from '../db/migrator';
import { loadConfig } from '../lib/config';
import { devKeyFiles, loadDevSigningKey, signAccessToken } from './dev-auth';
import { SEARCH_ATTRIBUTE_NAMES } from './search-attributes';
import { createKafka, createTopicsWithLeaders, RETIRED_TOPICS, TOPIC_SPECS } from '../lib/kafka';
import { connectRedis } from '../lib/redis';
import { temporalConnectionOptions } from '../lib/temporal-connection';

/** Custom search attributes the sagas keep current (registered by infra/stack.sh when Temporal starts). */
const VERIFY_TOPIC = 'oms.infra.verify';

const config = loadConfig();
const withServices = process.argv.includes('--services');
/** Set by ./oms when Prometheus runs (./oms up --monitoring). */
const prometheusUrl = process.argv.find((arg) => arg.startsWith('--monitoring='))?.slice('--monitoring='.length);
/** The alert rules of infra/monitoring/alerts.yml Prometheus must have loaded. */
const EXPECTED_ALERT_RULES = 8;
const failures: string[] = [];

const CHECK_TIMEOUT_MS = 30_000;

async function check(name: string, run: () => Promise<string | void>): Promise<void> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    const detail = await Promise.race([
      run(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS / 1000} s`)), CHECK_TIMEOUT_MS);
      }),
    ]);
    console.log(`  ok    ${name}${detail ? ` (${detail})` : ''} ${Math.round(performance.now() - started)} ms`);
  } catch (error) {
    failures.push(name);
    console.log(`  FAIL  ${name}: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    clearTimeout(timer);
  }
}

console.log('Verifying the OMS stack');

for (const service of SERVICE_NAMES) {
  await check(`postgres ${service}_db`, async () => {
    const db = openServiceDatabase(config, service, 'oms-verify');
    try {
      const { rows } = await sql<{ version: string }>`SELECT current_setting('server_version') AS version`.execute(db);
      return `PostgreSQL ${rows[0]?.version}`;
    } finally {
      await db.destroy();
    }
  });
}

await check('redis set/get', async () => {
  const redis = await connectRedis(config);
  try {
    const key = `oms:verify:${randomUUID()}`;
    await redis.set(key, 'ok', 'EX', 30);
    const value = await redis.get(key);
    await redis.del(key);
    if (value !== 'ok') throw new Error(`read back ${String(value)}`);
  } finally {
    redis.disconnect();
  }
});

const kafka = createKafka(config, 'oms-verify');
await check('kafka topics', async () => {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const metadata = await admin.fetchTopicMetadata();
    const partitions = new Map(metadata.topics.map((t) => [t.name, t.partitions.length]));
    const problems = TOPIC_SPECS.flatMap(({ topic, partitions: expected }) => {
      const actual = partitions.get(topic);
      if (actual === undefined) return [`${topic} missing`];
      return actual === expected ? [] : [`${topic} has ${actual} partitions, expected ${expected}`];
    });
    problems.push(...RETIRED_TOPICS.filter((topic) => partitions.has(topic)).map((topic) => `${topic} is retired but still present`));
    if (problems.length > 0) throw new Error(`${problems.join('; ')} (run: npm run topics)`);
    return TOPIC_SPECS.map((s) => s.topic).join(', ');
  } finally {
    await admin.disconnect();
  }
});

await check('kafka produce/consume round trip', async () => {
  const admin = kafka.admin();
  await admin.connect();
  if (!(await admin.listTopics()).includes(VERIFY_TOPIC)) {
    await createTopicsWithLeaders(admin, [{ topic: VERIFY_TOPIC, numPartitions: 1, configEntries: [{ name: 'retention.ms', value: '3600000' }] }]);
  }
  await admin.disconnect();
  const marker = randomUUID();
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: { retries: Number.MAX_SAFE_INTEGER, maxRetryTime: 5_000 } });
  await producer.connect();
  const [sent] = await producer.send({ topic: VERIFY_TOPIC, acks: -1, messages: [{ key: 'verify', value: marker }] });
  await producer.disconnect();
  const consumer = kafka.consumer({ groupId: `oms-verify-${marker}` });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic: VERIFY_TOPIC });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('message not consumed within 20 s')), 20_000);
      consumer.on(consumer.events.GROUP_JOIN, () => consumer.seek({ topic: VERIFY_TOPIC, partition: 0, offset: sent?.baseOffset ?? '0' }));
      void consumer.run({
        eachMessage: ({ message }) => {
          if (message.value?.toString() === marker) {
            clearTimeout(timer);
            resolve();
          }
          return Promise.resolve();
        },
      });
    });
    return `offset ${sent?.baseOffset}`;
  } finally {
    await consumer.disconnect();
    const cleanup = kafka.admin();
    await cleanup.connect();
    await cleanup.deleteGroups([`oms-verify-${marker}`]).catch(() => undefined);
    await cleanup.disconnect();
  }
});

await check(`temporal namespace ${config.TEMPORAL_NAMESPACE} and search attributes`, async () => {
  const connection = await Connection.connect({ ...temporalConnectionOptions(config), connectTimeout: 5_000 });
  try {
    const client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
    await client.workflowService.describeNamespace({ namespace: config.TEMPORAL_NAMESPACE });
    const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace: config.TEMPORAL_NAMESPACE });
    const missing = SEARCH_ATTRIBUTE_NAMES.filter((name) => !customAttributes || !(name in customAttributes));
    if (missing.length > 0) throw new Error(`search attributes missing: ${missing.join(', ')}`);
    return SEARCH_ATTRIBUTE_NAMES.join(', ');
  } finally {
    await connection.close();
  }
});

await check('temporal web ui', async () => {
  const response = await fetch(config.TEMPORAL_UI_URL, { signal: AbortSignal.timeout(5_000) });
  const body = await response.text();
  if (!response.ok || !body.includes('<html')) throw new Error(`${config.TEMPORAL_UI_URL} answered ${response.status}`);
  return config.TEMPORAL_UI_URL;
});

if (withServices) {
  const services = { 'order-service': config.ORDER_SERVICE_URL, 'product-service': config.PRODUCT_SERVICE_URL, 'payment-service': config.PAYMENT_SERVICE_URL };
  for (const [name, url] of Object.entries(services)) {
    await check(`${name} health`, async () => {
      const response = await fetch(new URL('/health', url), { signal: AbortSignal.timeout(5_000) });
      const body = (await response.json()) as { status?: string; checks?: Record<string, { status: string }> };
      if (response.status !== 200 || body.status !== 'UP') {
        const down = Object.entries(body.checks ?? {}).filter(([, c]) => c.status !== 'UP').map(([n]) => `${n}: down (the service log says why)`);
        throw new Error(`${url}/health answered ${response.status} ${down.join('; ')}`);
      }
      return url;
    });
  }
}

if (withServices) {
  // The order API must refuse anonymous callers; with the development key pair, `./oms token`'s
  // tokens must be accepted (the services trust the key it signs with).
  await check('order-service sign-in', async () => {
    const url = new URL('/orders?limit=1', config.ORDER_SERVICE_URL);
    const anonymous = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    if (anonymous.status !== 401) throw new Error(`GET /orders without a token answered ${anonymous.status}, expected 401`);
    if (config.AUTH_JWKS_URL || !existsSync(devKeyFiles().privateKey)) return 'anonymous callers refused';
    const token = await signAccessToken(loadDevSigningKey(), { operator: 'oms-verify' }, { issuer: config.AUTH_JWT_ISSUER, audience: config.AUTH_JWT_AUDIENCE, ttlSeconds: 60 });
    const signedIn = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5_000) });
    if (signedIn.status !== 200) throw new Error(`GET /orders with a development operator token answered ${signedIn.status}, expected 200`);
    return 'anonymous callers refused, development tokens accepted';
  });
}

if (prometheusUrl) {
  const api = async <T>(path: string): Promise<T> => {
    const response = await fetch(new URL(path, prometheusUrl), { signal: AbortSignal.timeout(5_000) });
    const body = (await response.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`${path}: ${body.error ?? response.status}`);
    return body.data;
  };
  await check(`prometheus alert rules (${prometheusUrl})`, async () => {
    const { groups } = await api<{ groups: { rules: { type: string; name: string; health: string }[] }[] }>('/api/v1/rules');
    const alerts = groups.flatMap((group) => group.rules).filter((rule) => rule.type === 'alerting');
    const unhealthy = alerts.filter((rule) => rule.health === 'err').map((rule) => rule.name);
    if (alerts.length !== EXPECTED_ALERT_RULES || unhealthy.length > 0) {
      throw new Error(`${alerts.length} alert rules loaded (expected ${EXPECTED_ALERT_RULES})${unhealthy.length ? `, failing: ${unhealthy.join(', ')}` : ''}`);
    }
    return `${alerts.length} alerts`;
  });
  await check('prometheus scrapes every target', async () => {
    // A target is scraped within one scrape interval (15 s) of Prometheus starting.
    for (let deadline = Date.now() + 25_000; ; ) {
      const { activeTargets } = await api<{ activeTargets: { labels: { job: string; service?: string }; health: string; lastError: string }[] }>('/api/v1/targets');
      const notUp = activeTargets.filter((target) => target.health !== 'up');
      if (activeTargets.length > 0 && notUp.length === 0) return `${activeTargets.length} targets up`;
      if (Date.now() > deadline) {
        throw new Error(notUp.map((t) => `${t.labels.service ?? t.labels.job} ${t.health}${t.lastError ? `: ${t.lastError}` : ''}`).join('; ') || 'no targets');
      }
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
  });
  await check('prometheus has the saga metrics', async () => {
    const { result } = await api<{ result: unknown[] }>(`/api/v1/query?query=${encodeURIComponent('oms_saga_active')}`);
    if (result.length === 0) throw new Error('no oms_saga_active series: is the worker scraped?');
    return `${result.length} series`;
  });
}

if (failures.length > 0) {
  console.log(`\n${failures.length} check(s) failed: ${failures.join(', ')}`);
  process.exit(1);
}
console.log('\nAll checks passed.');
