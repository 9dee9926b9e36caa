/** Configuration for tests: the defaults, pointed at the stack global setup found, with quiet logs and the test identities. */
import { inject } from 'vitest';
import { loadConfig, type Config } from '../../services/shared/config';
import { testAuthEnv } from './auth';

export function testConfig(overrides: Record<string, string> = {}): Config {
  const { PG_ADMIN_URL: _admin, ...stack } = inject('stack');
  return loadConfig({ ...process.env, NODE_ENV: 'test', LOG_LEVEL: 'silent', ...stack, ...testAuthEnv, ...overrides });
}
