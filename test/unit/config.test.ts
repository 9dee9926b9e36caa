import { describe, expect, it } from 'vitest';
import { ConfigError, DEV_WORKER_SERVICE_TOKEN, isLoopbackHost, jwtKeySource, loadConfig } from '../../lib/config';

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

  it('refuses topics that need more in-sync copies than they have', () => {
    expect(loadConfig({}).KAFKA_TOPIC_REPLICATION_FACTOR).toBe(1);
    expect(loadConfig({ KAFKA_TOPIC_REPLICATION_FACTOR: '3', KAFKA_TOPIC_MIN_INSYNC_REPLICAS: '2' }).KAFKA_TOPIC_MIN_INSYNC_REPLICAS).toBe(2);
    expect(() => loadConfig({ KAFKA_TOPIC_MIN_INSYNC_REPLICAS: '2' })).toThrow(/KAFKA_TOPIC_MIN_INSYNC_REPLICAS: cannot exceed KAFKA_TOPIC_REPLICATION_FACTOR/);
  });

  it('names every bad variable in one error', () => {
    const attempt = () => loadConfig({ ORDER_SERVICE_PORT: 'eighty', REDIS_URL: 'not a url', KAFKA_BROKERS: 'nohostport' });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(/ORDER_SERVICE_PORT/);
    expect(attempt).toThrow(/REDIS_URL/);
    expect(attempt).toThrow(/KAFKA_BROKERS/);
  });

  describe('authentication settings', () => {
    const realCredential = 'a-real-worker-credential-of-32-chars-or-more';
    const devKey = '/srv/oms/.oms/auth/oms-dev-jwt-public.pem';

    it('refuses the development worker credential in production, naming the variable', () => {
      expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/WORKER_SERVICE_TOKEN: the development default must not be used when NODE_ENV=production/);
      expect(loadConfig({ NODE_ENV: 'production', WORKER_SERVICE_TOKEN: realCredential, ...PRODUCTION_DATABASE_URLS }).WORKER_SERVICE_TOKEN).toBe(realCredential);
    });

    it('refuses the development defaults on a non-loopback HOST even outside production', () => {
      const attempt = () => loadConfig({ NODE_ENV: 'development', HOST: '0.0.0.0', AUTH_JWT_PUBLIC_KEY_FILE: devKey });
      expect(attempt).toThrow(/WORKER_SERVICE_TOKEN: the development default must not be used when HOST=0.0.0.0 is not a loopback address/);
      expect(attempt).toThrow(/AUTH_JWT_PUBLIC_KEY_FILE: the development default/);
      expect(() => loadConfig({ HOST: '10.0.0.5', WORKER_SERVICE_TOKEN: realCredential, AUTH_JWT_PUBLIC_KEY_FILE: '/etc/oms/idp.pem', ...PRODUCTION_DATABASE_URLS })).not.toThrow();
    });

    it('accepts the development defaults on loopback addresses', () => {
      for (const HOST of ['127.0.0.1', '127.0.1.1', 'localhost', '::1']) {
        expect(loadConfig({ HOST, AUTH_JWT_PUBLIC_KEY_FILE: devKey }).WORKER_SERVICE_TOKEN).toBe(DEV_WORKER_SERVICE_TOKEN);
      }
    });

    it('tells loopback from reachable addresses', () => {
      expect(['127.0.0.1', '127.255.0.9', 'localhost', '::1', '[::1]'].every(isLoopbackHost)).toBe(true);
      expect(['0.0.0.0', '::', '10.1.2.3', '192.168.0.1', 'oms.example.com', '127.example.com', '1127.0.0.1'].some(isLoopbackHost)).toBe(false);
    });

    it('refuses the retired SERVICE_TOKEN instead of ignoring it', () => {
      expect(() => loadConfig({ SERVICE_TOKEN: 'anything-at-all-of-some-length' })).toThrow(/SERVICE_TOKEN: replaced by per-caller credentials; set WORKER_SERVICE_TOKEN/);
    });

    it('refuses short credentials, symmetric or unknown algorithms, and two key sources', () => {
      expect(() => loadConfig({ WORKER_SERVICE_TOKEN: 'short' })).toThrow(/WORKER_SERVICE_TOKEN: must be at least 32 characters/);
      expect(() => loadConfig({ AUTH_JWT_ALGORITHMS: 'RS256,HS256' })).toThrow(/AUTH_JWT_ALGORITHMS/);
      expect(() => loadConfig({ AUTH_JWT_ALGORITHMS: 'none' })).toThrow(/AUTH_JWT_ALGORITHMS/);
      expect(loadConfig({ AUTH_JWT_ALGORITHMS: 'RS256, ES256' }).AUTH_JWT_ALGORITHMS).toEqual(['RS256', 'ES256']);
      expect(() => loadConfig({ AUTH_JWKS_URL: 'https://idp.example.com/jwks', AUTH_JWT_PUBLIC_KEY_FILE: '/k.pem' })).toThrow(/AUTH_JWKS_URL, AUTH_JWT_PUBLIC_KEY_FILE: set one of them, not both/);
    });

    it('gives the HTTP services their key source, or names the variables when there is none', () => {
      expect(jwtKeySource(loadConfig({ AUTH_JWKS_URL: 'https://idp.example.com/.well-known/jwks.json' }))).toEqual({ kind: 'jwks', url: 'https://idp.example.com/.well-known/jwks.json' });
      expect(jwtKeySource(loadConfig({ AUTH_JWT_PUBLIC_KEY_FILE: '/k.pem' }))).toEqual({ kind: 'public-key-file', path: '/k.pem' });
      expect(() => jwtKeySource(loadConfig({}))).toThrow(ConfigError);
      expect(() => jwtKeySource(loadConfig({}))).toThrow(/AUTH_JWKS_URL, AUTH_JWT_PUBLIC_KEY_FILE: one is required/);
    });
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
