/**
 * Minimal workflows with the saga's number of local activities (seven, no-op), arranged two ways:
 * all in one workflow, and split as the saga splits them (createOrder's three around a tccPayment
 * child's four). The bench compares them to measure what the child workflow itself costs the engine.
 * Bundled on their own by test/bench/engine-shapes.ts; never registered by an OMS worker.
 */
import { executeChild, proxyLocalActivities, workflowInfo } from '@temporalio/workflow';

const { noop } = proxyLocalActivities<{ noop(): Promise<void> }>({ startToCloseTimeout: '10 seconds' });

async function noops(count: number): Promise<void> {
  for (let i = 0; i < count; i++) await noop();
}

export async function sevenLocalActivities(): Promise<void> {
  await noops(7);
}

export async function fourLocalActivities(): Promise<void> {
  await noops(4);
}

export async function threeLocalActivitiesAroundAChild(): Promise<void> {
  await noops(2);
  await executeChild(fourLocalActivities, { workflowId: `${workflowInfo().workflowId}-child` });
  await noops(1);
}
