/**
 * The saga worker: order workflows (createOrder, cancelOrder, tccPayment) and the activities they
 * call, on the orders task queue. Dependencies are built by the caller (workers/main.ts or a test).
 */
import { Worker, type NativeConnection } from '@temporalio/worker';
import { createDiagnosticsActivities } from '../activities/diagnostics';
import type { Config } from '../services/shared/config';
import { workflowSource } from './workflow-bundle';

export interface SagaWorkerOptions {
  connection: NativeConnection;
  config: Config;
  identity: string;
  /** Overrides the configured task queue (tests use one per suite). */
  taskQueue?: string;
}

export async function createSagaWorker({ connection, config, identity, taskQueue = config.TEMPORAL_TASK_QUEUE }: SagaWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue,
    identity,
    ...workflowSource(config.OMS_WORKFLOW_BUNDLE),
    activities: { ...createDiagnosticsActivities({ workerIdentity: identity }) },
    maxConcurrentActivityTaskExecutions: config.WORKER_MAX_CONCURRENT_ACTIVITIES,
    maxConcurrentWorkflowTaskExecutions: config.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
    shutdownGraceTime: config.WORKER_SHUTDOWN_GRACE_MS,
  });
}
