import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../services/shared/config';

/** Database URLs without the development passwords, which production refuses (see infrastructure-security.test.ts). */
const PRODUCTION_DATABASE_URLS = Object.fromEntries(
  ['ORDER', 'PRODUCT', 'PAYMENT', 'WORKER_ORDER', 'WORKER_PRODUCT', 'WORKER_PAYMENT'].map((name) => [`${name}_DATABASE_URL`, `postgres://role:secret-${name}@db.internal:5432/db`]),
);

describe('loadConfig', () => {
  it('gives the local stack defaults when nothing is set', () => {
    const config = loadConfig({});
    expect(config.ORDER_SERVICE_PORT).toBe(8084);
    expect(config.PRODUCT_SERVICE_PORT).toBe(8083);
    expect(config.PAYMENT_SERVICE_PORT).toBe(8085);
    expect(config.KAFKA_BROKERS).toEqual(['127.0.0.1:9092']);
    expect(config.RESERVATION_TTL_SECONDS).toBe(900);
    expect(config.OUTBOX_MAX_RETRIES).toBe(5);
  });

  it('is frozen, so nothing changes configuration after start-up', () => {
    const config = loadConfig({});
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('coerces numbers and splits broker lists', () => {
    const config = loadConfig({ ORDER_SERVICE_PORT: '9000', KAFKA_BROKERS: 'a:1, b:2' });
    expect(config.ORDER_SERVICE_PORT).toBe(9000);
    expect(config.KAFKA_BROKERS).toEqual(['a:1', 'b:2']);
  });

  it('names every bad variable in one error', () => {
    const attempt = () => loadConfig({ ORDER_SERVICE_PORT: 'eighty', REDIS_URL: 'not a url', KAFKA_BROKERS: 'nohostport' });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(/ORDER_SERVICE_PORT/);
    expect(attempt).toThrow(/REDIS_URL/);
    expect(attempt).toThrow(/KAFKA_BROKERS/);
  });

  it('refuses the development service token in production', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/SERVICE_TOKEN/);
    expect(loadConfig({ NODE_ENV: 'production', SERVICE_TOKEN: 'a-real-secret-of-some-length', ...PRODUCTION_DATABASE_URLS }).SERVICE_TOKEN).toBe(
      'a-real-secret-of-some-length',
    );
  });
});
