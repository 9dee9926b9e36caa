/**
 * A Temporal worker in the bench process on a task queue of its own, so nothing else competes for its
 * tasks, and a client that starts workflows there and waits for them: what the engine-only scenarios
 * (engine-ceiling.ts, engine-shapes.ts) share.
 */
import { randomUUID } from 'node:crypto';
import { Client, type WorkflowStartOptions } from '@temporalio/client';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type { Config } from '../../lib/config';
import { temporalConnectionOptions } from '../../lib/temporal-connection';

export interface BenchEngine {
  client: Client;
  /**
   * Starts a workflow on the bench's queue, eagerly as the saga starter does (the worker shares the
   * client's connection), and waits for its result.
   */
  run: (workflowType: string, options: Omit<WorkflowStartOptions, 'taskQueue' | 'requestEagerStart'>) => Promise<void>;
  /** Terminates what `run` started and has not finished, then stops the worker. */
  close: () => Promise<void>;
}

/** `name` labels the queue and the worker's identity; `workerOptions` gets what the worker must use. */
export async function startBenchEngine(
  config: Config,
  name: string,
  workerOptions: (worker: { connection: NativeConnection; taskQueue: string; identity: string; client: Client }) => Promise<WorkerOptions> | WorkerOptions,
): Promise<BenchEngine> {
  const taskQueue = `oms-bench-${name}-${randomUUID().slice(0, 8)}`;
  const connection = await NativeConnection.connect(temporalConnectionOptions(config));
  const client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  const worker = await Worker.create(await workerOptions({ connection, taskQueue, identity: `oms-bench-${name}@${process.pid}`, client }));
  const running = worker.run();
  // Started and not yet finished: close() terminates them, so a run that stops early (a failure,
  // Ctrl-C) leaves no workflow open on a queue that no worker will ever poll again. Terminating a
  // parent terminates its children too (the default parent close policy).
  const unfinished = new Set<string>();

  return {
    client,
    async run(workflowType, options) {
      unfinished.add(options.workflowId);
      const handle = await client.workflow.start(workflowType, { ...options, taskQueue, requestEagerStart: true });
      await handle.result();
      unfinished.delete(options.workflowId);
    },
    async close() {
      await Promise.allSettled([...unfinished].map((workflowId) => client.workflow.getHandle(workflowId).terminate(`bench ${name} stopped`)));
      worker.shutdown();
      await running;
      await connection.close();
    },
  };
}
