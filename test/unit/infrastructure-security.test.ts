/**
 * Configuration of database timeouts and transport security: what each variable becomes in the
 * clients' options, and the combinations loadConfig refuses, each naming its variables.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { clientConfig, databaseTimeoutKind, MIGRATION_SESSION_TIMEOUTS } from '../../db/connection';
import { databaseOptions, sessionTimeouts } from '../../db/databases';
import { ConfigError, isLoopbackHost, loadConfig } from '../../lib/config';
import { kafkaConnectionConfig, kafkaSecurityOptions } from '../../lib/kafka';
import { redisOptions } from '../../lib/redis';
import { temporalConnectionOptions } from '../../lib/temporal-connection';

const dir = mkdtempSync(join(tmpdir(), 'oms-config-'));
const file = (name: string, content: string) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};
const ca = file('ca.pem', 'CA PEM');
const cert = file('client.crt', 'CERT PEM');
const key = file('client.key', 'KEY PEM');

const nonDevelopmentUrls = Object.fromEntries(
  ['ORDER', 'PRODUCT', 'PAYMENT', 'WORKER_ORDER', 'WORKER_PRODUCT', 'WORKER_PAYMENT'].map((name) => [`${name}_DATABASE_URL`, `postgres://role:s3cret-${name}@db.internal:5432/db`]),
);

function problems(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('loadConfig accepted the configuration');
}

describe('database sessions', () => {
  it('bound acquire, statement, lock and idle-in-transaction time by default, and take them from configuration', () => {
    expect(sessionTimeouts(loadConfig({}))).toEqual({ acquireMs: 5_000, statementMs: 10_000, lockMs: 5_000, idleInTransactionMs: 60_000 });
    const config = loadConfig({ DATABASE_ACQUIRE_TIMEOUT_MS: '250', DATABASE_STATEMENT_TIMEOUT_MS: '1500', DATABASE_LOCK_TIMEOUT_MS: '700', DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: '9000' });
    const client = clientConfig(databaseOptions(config, config.ORDER_DATABASE_URL, 'oms-order'));
    expect(client).toMatchObject({ connectionTimeoutMillis: 250, statement_timeout: 1500, lock_timeout: 700, idle_in_transaction_session_timeout: 9000, application_name: 'oms-order' });
    expect(() => loadConfig({ DATABASE_STATEMENT_TIMEOUT_MS: '0' })).toThrow(/DATABASE_STATEMENT_TIMEOUT_MS/);
  });

  it('leave migrations without a statement or lock timeout', () => {
    const client = clientConfig({ connectionString: 'postgres://a:b@127.0.0.1/db', timeouts: MIGRATION_SESSION_TIMEOUTS });
    expect(client.statement_timeout).toBeUndefined();
    expect(client.lock_timeout).toBeUndefined();
    expect(client.connectionTimeoutMillis).toBe(5_000);
  });

  it('use TLS verified against DATABASE_SSL_CA_FILE, which replaces any sslmode in the URL', () => {
    const config = loadConfig({ DATABASE_SSL_CA_FILE: ca, ORDER_DATABASE_URL: 'postgres://oms_order:pw@db.internal:5432/order_db?sslmode=disable' });
    const client = clientConfig(databaseOptions(config, config.ORDER_DATABASE_URL, 'oms-order'));
    expect(client.ssl).toEqual({ ca: 'CA PEM', rejectUnauthorized: true });
    expect(client.connectionString).toBe('postgres://oms_order:pw@db.internal:5432/order_db');
    expect(() => loadConfig({ DATABASE_SSL_CA_FILE: join(dir, 'missing.pem') })).toThrow(/DATABASE_SSL_CA_FILE: file does not exist/);
  });

  it('classify the bounds: statement_timeout, lock_timeout, pool acquire; nothing else', () => {
    expect(databaseTimeoutKind(Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' }))).toBe('statement');
    expect(databaseTimeoutKind(Object.assign(new Error('canceling statement due to lock timeout'), { code: '55P03' }))).toBe('lock');
    expect(databaseTimeoutKind(new Error('timeout exceeded when trying to connect'))).toBe('acquire');
    expect(databaseTimeoutKind(Object.assign(new Error('duplicate key'), { code: '23505' }))).toBeUndefined();
    expect(databaseTimeoutKind(undefined)).toBeUndefined();
  });
});

describe('development credentials', () => {
  /** The sign-in settings have development defaults of their own, refused in the same places. */
  const REAL_WORKER_CREDENTIAL = 'a-real-worker-credential-of-32-chars-or-more';

  it('are refused in production and on a non-loopback HOST, naming each database URL', () => {
    const production = problems({ NODE_ENV: 'production', WORKER_SERVICE_TOKEN: REAL_WORKER_CREDENTIAL });
    for (const name of ['ORDER_DATABASE_URL', 'PRODUCT_DATABASE_URL', 'PAYMENT_DATABASE_URL', 'WORKER_ORDER_DATABASE_URL', 'WORKER_PRODUCT_DATABASE_URL', 'WORKER_PAYMENT_DATABASE_URL']) {
      expect(production).toContain(`${name}: the development default password must not be used in production`);
    }
    expect(problems({ HOST: '0.0.0.0' })).toContain('ORDER_DATABASE_URL: the development default password must not be used with HOST=0.0.0.0 (not loopback)');
    expect(loadConfig({ HOST: '0.0.0.0', WORKER_SERVICE_TOKEN: REAL_WORKER_CREDENTIAL, ...nonDevelopmentUrls }).HOST).toBe('0.0.0.0');
    expect(loadConfig({ NODE_ENV: 'production', WORKER_SERVICE_TOKEN: REAL_WORKER_CREDENTIAL, ...nonDevelopmentUrls }).NODE_ENV).toBe('production');
  });

  it('are fine on loopback outside production', () => {
    for (const host of ['127.0.0.1', '127.0.0.53', 'localhost', '::1']) expect(isLoopbackHost(host)).toBe(true);
    for (const host of ['0.0.0.0', '::', '10.0.0.5', 'order-service']) expect(isLoopbackHost(host)).toBe(false);
    expect(loadConfig({ NODE_ENV: 'development', HOST: '127.0.0.1' }).ORDER_DATABASE_URL).toContain('oms_order');
  });
});

describe('Redis transport', () => {
  it('takes password and TLS from the URL, and a CA from REDIS_TLS_CA_FILE', () => {
    expect(redisOptions(loadConfig({})).tls).toBeUndefined();
    const options = redisOptions(loadConfig({ REDIS_URL: 'rediss://:pw@cache.internal:6380', REDIS_TLS_CA_FILE: ca }));
    expect(options.tls).toEqual({ ca: 'CA PEM' });
    expect(problems({ REDIS_TLS_CA_FILE: ca })).toContain('REDIS_TLS_CA_FILE: requires a rediss:// REDIS_URL');
  });
});

describe('Kafka transport', () => {
  it('is plaintext by default; TLS with the system CAs, a CA, or mutual TLS; SASL from its three variables', () => {
    expect(kafkaSecurityOptions(loadConfig({}))).toEqual({});
    expect(kafkaSecurityOptions(loadConfig({ KAFKA_SSL: 'true' }))).toEqual({ ssl: true });
    expect(kafkaSecurityOptions(loadConfig({ KAFKA_SSL: 'true', KAFKA_SSL_CA_FILE: ca, KAFKA_SSL_CERT_FILE: cert, KAFKA_SSL_KEY_FILE: key }))).toEqual({
      ssl: { rejectUnauthorized: true, ca: 'CA PEM', cert: 'CERT PEM', key: 'KEY PEM' },
    });
    const sasl = loadConfig({ KAFKA_SSL: '1', KAFKA_SASL_MECHANISM: 'scram-sha-512', KAFKA_SASL_USERNAME: 'oms', KAFKA_SASL_PASSWORD: 'pw' });
    expect(kafkaSecurityOptions(sasl)).toEqual({ ssl: true, sasl: { mechanism: 'scram-sha-512', username: 'oms', password: 'pw' } });
  });

  it('hands another process only what reaching the brokers takes, its TLS and SASL settings included', () => {
    const config = loadConfig({ KAFKA_BROKERS: 'k1:9092,k2:9092', KAFKA_SSL: '1', KAFKA_SASL_MECHANISM: 'scram-sha-512', KAFKA_SASL_USERNAME: 'oms', KAFKA_SASL_PASSWORD: 'pw' });
    const connection = kafkaConnectionConfig(config);
    expect(connection).toEqual({
      KAFKA_BROKERS: ['k1:9092', 'k2:9092'],
      KAFKA_CLIENT_ID: config.KAFKA_CLIENT_ID,
      KAFKA_SSL: true,
      KAFKA_SASL_MECHANISM: 'scram-sha-512',
      KAFKA_SASL_USERNAME: 'oms',
      KAFKA_SASL_PASSWORD: 'pw',
    });
    expect(kafkaSecurityOptions(connection)).toEqual(kafkaSecurityOptions(config));
  });

  it('refuses combinations that cannot work or would send the password in clear', () => {
    expect(problems({ KAFKA_SSL: 'true', KAFKA_SSL_CERT_FILE: cert })).toContain('KAFKA_SSL_CERT_FILE, KAFKA_SSL_KEY_FILE: set both or neither');
    expect(problems({ KAFKA_SSL_CA_FILE: ca })).toContain('KAFKA_SSL_CA_FILE: requires KAFKA_SSL=true');
    expect(problems({ KAFKA_SASL_MECHANISM: 'scram-sha-256' })).toContain('KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD: required with KAFKA_SASL_MECHANISM');
    expect(problems({ KAFKA_SASL_USERNAME: 'oms', KAFKA_SASL_PASSWORD: 'pw' })).toContain('KAFKA_SASL_MECHANISM: required with');
    expect(problems({ KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'oms', KAFKA_SASL_PASSWORD: 'pw' })).toContain('KAFKA_SASL_MECHANISM: plain sends the password in clear');
    expect(problems({ KAFKA_SSL: 'yes' })).toContain('KAFKA_SSL');
  });
});

describe('Temporal connection', () => {
  it('is the address alone by default; TLS with a CA, a client certificate (mTLS) and a server name; an API key', () => {
    expect(temporalConnectionOptions(loadConfig({}))).toEqual({ address: '127.0.0.1:7233' });
    expect(temporalConnectionOptions(loadConfig({ TEMPORAL_TLS: 'true' }))).toEqual({ address: '127.0.0.1:7233', tls: {} });
    const mtls = temporalConnectionOptions(
      loadConfig({ TEMPORAL_ADDRESS: 'temporal.internal:7233', TEMPORAL_TLS: 'true', TEMPORAL_TLS_CA_FILE: ca, TEMPORAL_TLS_CERT_FILE: cert, TEMPORAL_TLS_KEY_FILE: key, TEMPORAL_TLS_SERVER_NAME: 'frontend' }),
    );
    expect(mtls.address).toBe('temporal.internal:7233');
    expect(mtls.tls?.serverNameOverride).toBe('frontend');
    expect(Buffer.from(mtls.tls?.serverRootCACertificate ?? []).toString()).toBe('CA PEM');
    expect(Buffer.from(mtls.tls?.clientCertPair?.crt ?? []).toString()).toBe('CERT PEM');
    expect(Buffer.from(mtls.tls?.clientCertPair?.key ?? []).toString()).toBe('KEY PEM');
    expect(temporalConnectionOptions(loadConfig({ TEMPORAL_TLS: 'true', TEMPORAL_API_KEY: 'key-123' }))).toEqual({ address: '127.0.0.1:7233', tls: {}, apiKey: 'key-123' });
  });

  it('refuses an API key or TLS files without TEMPORAL_TLS, and half a client certificate', () => {
    expect(problems({ TEMPORAL_API_KEY: 'key-123' })).toContain('TEMPORAL_API_KEY: requires TEMPORAL_TLS=true');
    expect(problems({ TEMPORAL_TLS_CA_FILE: ca })).toContain('TEMPORAL_TLS_CA_FILE: requires TEMPORAL_TLS=true');
    expect(problems({ TEMPORAL_TLS: 'true', TEMPORAL_TLS_KEY_FILE: key })).toContain('TEMPORAL_TLS_CERT_FILE, TEMPORAL_TLS_KEY_FILE: set both or neither');
    expect(problems({ TEMPORAL_TLS: 'true', TEMPORAL_TLS_CERT_FILE: join(dir, 'nope.crt'), TEMPORAL_TLS_KEY_FILE: key })).toContain('TEMPORAL_TLS_CERT_FILE: file does not exist');
  });
});
