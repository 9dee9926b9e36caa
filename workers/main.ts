/**
 * The OMS worker process: builds the real dependencies and runs every Temporal worker of OMS, the
 * saga starter and the event consumers until SIGTERM/SIGINT, when the Temporal runtime calls
 * shutdown() on each and in-flight activities drain.
 */
import { hostname } from 'node:os';
import { Client } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, makeTelemetryFilterString, type Worker } from '@temporalio/worker';
import { loadConfig } from '../lib/config';
import { createMetricsRegistry } from '../lib/metrics';
import { startOrExit } from '../services/shared/run-service';
import { temporalConnectionOptions } from '../lib/temporal-connection';
import { createSagaMetrics } from './saga-metrics';
import { startWorkerSagaStarter } from './saga-starter';
import { createSagaWorker } from './saga-worker';
import { startEventRelayAndConsumers } from './outbox-worker';

startOrExit(async () => {
  const config = loadConfig();
  const identity = `oms-worker@${hostname()}:${process.pid}`;
  Runtime.install({
    logger: new DefaultLogger(config.LOG_LEVEL === 'debug' || config.LOG_LEVEL === 'trace' ? 'DEBUG' : 'INFO'),
    telemetryOptions: {
      logging: { filter: makeTelemetryFilterString({ core: 'WARN' }), forward: {} },
      metrics: { prometheus: { bindAddress: `${config.HOST}:${config.WORKER_METRICS_PORT}` } },
    },
  });

  const connection = await NativeConnection.connect(temporalConnectionOptions(config));
  try {
    const registry = createMetricsRegistry('oms-worker');
    // One client on the workers' own NativeConnection: what eager workflow start needs.
    const client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
    const sagaMetrics = createSagaMetrics(registry, client);
    const events = await startEventRelayAndConsumers({ connection, config, identity, registry });
    const workers: Worker[] = [await createSagaWorker({ connection, config, identity, sagaMetrics }), events.worker];
    const starter = startWorkerSagaStarter({ config, client, registry });
    console.log(JSON.stringify({ msg: 'worker started', identity, taskQueues: workers.map((w) => w.options.taskQueue) }));
    await Promise.all(workers.map((worker) => worker.run())).finally(async () => {
      await starter.stop();
      await events.close();
    });
  } finally {
    await connection.close();
  }
});
