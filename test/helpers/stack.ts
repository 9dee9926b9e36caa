/** Configuration for tests: the defaults, pointed at the stack global setup found, with quiet logs and the test identities. */
import { inject } from 'vitest';
import { loadConfig, type Config } from '../../lib/config';
import { testAuthEnv } from './auth';

/**
 * Every request of a test comes from this machine: the per-address rate limit exempts it, so no
 * suite trips the limit by accident (the limits' own suite overrides this). The limit's hooks
 * still run on every request.
 */
const TEST_LIMITS = { RATE_LIMIT_EXEMPT_ADDRESSES: '127.0.0.1,::1' };

export function testConfig(overrides: Record<string, string> = {}): Config {
  const { PG_ADMIN_URL: _admin, PG_HOST: _host, ...stack } = inject('stack');
  return loadConfig({ ...process.env, NODE_ENV: 'test', LOG_LEVEL: 'silent', ...TEST_LIMITS, ...stack, ...testAuthEnv, ...overrides });
}
