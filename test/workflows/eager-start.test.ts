/**
 * Eager workflow start, as a starter that lives in the worker's process should use it: a Client on
 * the worker's own NativeConnection, `requestEagerStart: true`. The server (infra/stack.sh enables
 * system.enableEagerWorkflowStart) hands the first workflow task back in the start response, so the
 * workflow runs without waiting for a poll. Without the shared connection the client refuses.
 */
import { randomUUID } from 'node:crypto';
import { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSagaWorker } from '../../workers/saga-worker';
import { pingWorkflow } from '../../workflows/diagnostics';
import { testConfig } from '../helpers/stack';
import { connectTestTemporal, type TestTemporal } from '../helpers/temporal';

describe('eager workflow start', () => {
  let temporal: TestTemporal;
  beforeAll(async () => {
    temporal = await connectTestTemporal('eager-start');
  });
  afterAll(() => temporal.close());

  it('starts a workflow on the worker that shares the starter connection', async () => {
    const identity = `eager-worker-${randomUUID()}`;
    const worker = await createSagaWorker({ connection: temporal.workerConnection, config: testConfig(), identity, taskQueue: temporal.taskQueue });
    const starter = new Client({ connection: temporal.workerConnection, namespace: 'default' });
    const workflowId = `eager-${randomUUID()}`;

    const result = await worker.runUntil(async () => {
      const handle = await starter.workflow.start(pingWorkflow, { taskQueue: temporal.taskQueue, workflowId, args: ['eager'], requestEagerStart: true });
      expect(handle.eagerlyStarted).toBe(true);
      return handle.result();
    });

    expect(result).toEqual({ workflowId, message: 'eager', workerIdentity: identity });
  });

  it('is refused by a client on a connection of its own', async () => {
    const start = temporal.client.workflow.start(pingWorkflow, { taskQueue: temporal.taskQueue, workflowId: `eager-${randomUUID()}`, args: ['x'], requestEagerStart: true });
    await expect(start).rejects.toThrow(/NativeConnection shared between client and worker/);
  });
});
