/** Integration tests' global setup: find (or, with OMS_TESTCONTAINERS=1, start) the real stack once. */
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { ensureLoginRoles, loginRoles } from '../../db/provision';
import { loadConfig } from '../../lib/config';
import './stack-env';
import type { StackEnv } from './stack-env';
import { useLocalStack } from './local-stack';

/** The per-suite databases belong to the service roles, so those must exist (idempotent, like db/provision.ts). */
async function provisionRoles(env: StackEnv): Promise<void> {
  const { owners, worker } = loginRoles(loadConfig());
  const admin = new pg.Client({ connectionString: env.PG_ADMIN_URL });
  await admin.connect();
  try {
    await ensureLoginRoles(admin, [...Object.values(owners), worker]);
  } finally {
    await admin.end();
  }
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  if (process.env.OMS_TESTCONTAINERS === '1') {
    const { startContainers } = await import('./containers');
    const { env, stop } = await startContainers();
    await provisionRoles(env);
    project.provide('stack', env);
    return stop;
  }
  const env = await useLocalStack();
  await provisionRoles(env);
  project.provide('stack', env);
  return undefined;
}
