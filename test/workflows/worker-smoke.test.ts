import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSagaWorker } from '../../workers/saga-worker';
import { pingWorkflow } from '../../workflows/diagnostics';
import { testConfig } from '../helpers/stack';
import { connectTestTemporal, type TestTemporal } from '../helpers/temporal';

describe('a worker on the real Temporal server', () => {
  let temporal: TestTemporal;
  beforeAll(async () => {
    temporal = await connectTestTemporal('smoke');
  });
  afterAll(() => temporal.close());

  it('runs a workflow whose activity it executes', async () => {
    const identity = `smoke-worker-${randomUUID()}`;
    const worker = await createSagaWorker({ connection: temporal.workerConnection, config: testConfig(), identity, taskQueue: temporal.taskQueue });
    const workflowId = `smoke-${randomUUID()}`;
    const result = await worker.runUntil(
      temporal.client.workflow.execute(pingWorkflow, { taskQueue: temporal.taskQueue, workflowId, args: ['hello'] }),
    );
    expect(result).toEqual({ workflowId, message: 'hello', workerIdentity: identity });

    // The server kept the history: the workflow completed, with one activity.
    const history = await temporal.client.workflow.getHandle(workflowId).fetchHistory();
    const types = (history.events ?? []).map((event) => event.eventType);
    expect(types).toContain(10); // ACTIVITY_TASK_SCHEDULED
    expect(types.at(-1)).toBe(2); // WORKFLOW_EXECUTION_COMPLETED
  });
});
