/**
 * The OMS worker process: builds the real dependencies, registers the workflows and activities on
 * the task queue, and drains in-flight activities on SIGTERM/SIGINT (the Temporal runtime handles
 * the signals and calls worker.shutdown()).
 */
import { hostname } from 'node:os';
import { DefaultLogger, NativeConnection, Runtime, Worker, makeTelemetryFilterString } from '@temporalio/worker';
import { createDiagnosticsActivities } from '../activities/diagnostics';
import { loadConfig } from '../services/shared/config';
import { startOrExit } from '../services/shared/run-service';
import { workflowSource } from './workflow-bundle';

startOrExit(async () => {
  const config = loadConfig();
  const identity = `oms-worker@${hostname()}:${process.pid}`;
  Runtime.install({
    logger: new DefaultLogger(config.LOG_LEVEL === 'debug' || config.LOG_LEVEL === 'trace' ? 'DEBUG' : 'INFO'),
    telemetryOptions: {
      logging: { filter: makeTelemetryFilterString({ core: 'WARN' }), forward: {} },
      metrics: { prometheus: { bindAddress: `127.0.0.1:${config.WORKER_METRICS_PORT}` } },
    },
  });

  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  try {
    const worker = await Worker.create({
      connection,
      namespace: config.TEMPORAL_NAMESPACE,
      taskQueue: config.TEMPORAL_TASK_QUEUE,
      identity,
      ...workflowSource(config.OMS_WORKFLOW_BUNDLE),
      activities: { ...createDiagnosticsActivities({ workerIdentity: identity }) },
      maxConcurrentActivityTaskExecutions: config.WORKER_MAX_CONCURRENT_ACTIVITIES,
      maxConcurrentWorkflowTaskExecutions: config.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
      shutdownGraceTime: config.WORKER_SHUTDOWN_GRACE_MS,
    });
    console.log(JSON.stringify({ msg: 'worker started', identity, taskQueue: config.TEMPORAL_TASK_QUEUE }));
    await worker.run();
  } finally {
    await connection.close();
  }
});
