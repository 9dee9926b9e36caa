/**
 * Records workflow histories for the replay test. Off by default (a test run must not rewrite
 * committed files); `OMS_RECORD_HISTORIES=1 npx vitest run test/workflows/order-saga.test.ts`
 * refreshes test/workflows/histories/*.json after an intended workflow change.
 */
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { temporal } from '@temporalio/proto';
import type { SagaHarness } from './saga-harness';

export const historiesDir = fileURLToPath(new URL('./histories/', import.meta.url));

export async function recordHistory(harness: SagaHarness, workflowId: string, name: string): Promise<void> {
  if (process.env.OMS_RECORD_HISTORIES !== '1') return;
  const history = await harness.temporal.client.workflow.getHandle(workflowId).fetchHistory();
  await writeFile(`${historiesDir}${name}.json`, `${JSON.stringify(temporal.api.history.v1.History.fromObject(history).toJSON(), null, 1)}\n`);
}

/**
 * Reads a recorded history. Decoded with the proto classes themselves rather than the SDK's
 * historyFromJSON, whose protobufjs copy differs from @temporalio/proto's in this install.
 */
export function parseHistory(json: string): temporal.api.history.v1.History {
  return temporal.api.history.v1.History.fromObject(JSON.parse(json) as Record<string, unknown>);
}
