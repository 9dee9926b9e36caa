/** Integration tests' global setup: find (or, with OMS_TESTCONTAINERS=1, start) the real stack once. */
import type { TestProject } from 'vitest/node';
import './stack-env';
import { useLocalStack } from './local-stack';

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  if (process.env.OMS_TESTCONTAINERS === '1') {
    const { startContainers } = await import('./containers');
    const { env, stop } = await startContainers();
    project.provide('stack', env);
    return stop;
  }
  project.provide('stack', await useLocalStack());
  return undefined;
}
