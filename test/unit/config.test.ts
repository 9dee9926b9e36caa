import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../services/shared/config';

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
    expect(loadConfig({ NODE_ENV: 'production', SERVICE_TOKEN: 'a-real-secret-of-some-length' }).SERVICE_TOKEN).toBe('a-real-secret-of-some-length');
  });

  it('parses the abuse limits and refuses bad values naming the variable', () => {
    const config = loadConfig({ RATE_LIMIT_ENABLED: 'false', RATE_LIMIT_EXEMPT_ADDRESSES: '10.0.0.5, ::1', TRUST_PROXY: '10.0.0.0/8,192.168.1.1', EXPOSE_DOCS: 'false' });
    expect(config).toMatchObject({ RATE_LIMIT_ENABLED: false, RATE_LIMIT_EXEMPT_ADDRESSES: ['10.0.0.5', '::1'], TRUST_PROXY: '10.0.0.0/8,192.168.1.1', EXPOSE_DOCS: false });
    expect(loadConfig({})).toMatchObject({ RATE_LIMIT_ENABLED: true, RATE_LIMIT_EXEMPT_ADDRESSES: [], TRUST_PROXY: false, METRICS_ENABLED: true, MAX_OPEN_CHECKOUTS_PER_CUSTOMER: 3 });
    for (const [variable, value] of [
      ['RATE_LIMIT_ENABLED', 'yes'],
      ['RATE_LIMIT_EXEMPT_ADDRESSES', 'localhost'],
      ['TRUST_PROXY', 'true'],
      ['METRICS_BEARER_TOKEN', 'short'],
      ['RATE_LIMIT_PER_ADDRESS_PER_MINUTE', '0'],
    ] as const) {
      expect(() => loadConfig({ [variable]: value }), variable).toThrow(new RegExp(variable));
    }
  });
});
