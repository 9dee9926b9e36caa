/** What every OMS Temporal worker shares: namespace, identity, workflow code, limits from configuration. */
import type { NativeConnection, WorkerOptions } from '@temporalio/worker';
import type { Config } from '../lib/config';
import { correlationActivityInterceptor } from './correlation';
import { workflowSource } from './workflow-bundle';

export interface BaseWorkerOptions {
  connection: NativeConnection;
  config: Config;
  identity: string;
  taskQueue: string;
}

export async function baseWorkerOptions({ connection, config, identity, taskQueue }: BaseWorkerOptions): Promise<Omit<WorkerOptions, 'activities'>> {
  return {
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue,
    identity,
    ...(await workflowSource(config.OMS_WORKFLOW_BUNDLE)),
    interceptors: { activity: [correlationActivityInterceptor] },
    maxConcurrentActivityTaskExecutions: config.WORKER_MAX_CONCURRENT_ACTIVITIES,
    maxConcurrentWorkflowTaskExecutions: config.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
    shutdownGraceTime: config.WORKER_SHUTDOWN_GRACE_MS,
  };
}
