/**
 * The outbox worker: the relay workflows and their activities on their own task queue, so a
 * backlog of saga work never delays events (and the reverse). Also builds the relay's real
 * dependencies and starts the relay workflows, one per service database, idempotently.
 */
import { Client, Connection } from '@temporalio/client';
import { Worker, type NativeConnection } from '@temporalio/worker';
import type { Kafka } from 'kafkajs';
import type { Kysely } from 'kysely';
import { pino, type Logger } from 'pino';
import type { Registry } from 'prom-client';
import { databaseOptions, openWorkerDatabase, workerDatabaseUrl } from '../db/databases';
import type { SharedTables } from '../lib/shared-tables';
import { createOutboxRelayActivities, type OutboxRelayDependencies, type OutboxSource } from './outbox-relay/activities';
import type { Config } from '../lib/config';
import { consumerGroupLag, createKafka, ensureTopics } from '../lib/kafka';
import { loggerOptions } from '../lib/logger';
import { temporalConnectionOptions } from '../lib/temporal-connection';
import { createConsumerMetrics, createOutboxMetrics } from './outbox-relay/metrics';
import type { outboxRelayWorkflow } from '../workflows/outbox-relay';
import {
  OUTBOX_DATABASES,
  OUTBOX_RELAY_WORKFLOW_TYPE,
  OUTBOX_TASK_QUEUE,
  outboxRelayWorkflowId,
  type OutboxDatabaseName,
  type OutboxRelayInput,
} from '../workflows/outbox-relay-contract';
import { serveAppMetrics } from './app-metrics';
import {
  ORDER_CATALOGUE_GROUP,
  ORDER_CATALOGUE_TOPICS,
  ORDER_TIMELINE_GROUP,
  ORDER_TIMELINE_TOPICS,
  startCatalogueConsumer,
  startOrderTimelineConsumer,
} from './order-events-consumer';
import { createSupervisionMetrics, superviseConsumer, superviseOutboxRelays } from './supervision';
import { baseWorkerOptions } from './worker-options';

export interface OutboxWorkerOptions {
  connection: NativeConnection;
  config: Config;
  identity: string;
  dependencies: OutboxRelayDependencies;
  /** Overrides the outbox task queue (tests use one per suite). */
  taskQueue?: string;
}

export async function createOutboxWorker({ connection, config, identity, dependencies, taskQueue = OUTBOX_TASK_QUEUE }: OutboxWorkerOptions): Promise<Worker> {
  return Worker.create({ ...(await baseWorkerOptions({ connection, config, identity, taskQueue })), activities: createOutboxRelayActivities(dependencies) });
}

/** Opens the given service databases for the relay, as the worker's role; `close` ends their pools. */
export function openOutboxSources(
  config: Config,
  databases: readonly OutboxDatabaseName[] = OUTBOX_DATABASES,
): { sources: Partial<Record<OutboxDatabaseName, OutboxSource>>; close: () => Promise<void> } {
  const sources: Partial<Record<OutboxDatabaseName, OutboxSource>> = {};
  for (const database of databases) {
    sources[database] = {
      db: openWorkerDatabase(config, database, 'oms-outbox-relay') as unknown as Kysely<SharedTables>,
      listener: databaseOptions(config, workerDatabaseUrl(config, database), 'oms-outbox-listener'),
    };
  }
  return { sources, close: async () => void (await Promise.all(Object.values(sources).map((source) => source.db.destroy()))) };
}

export function buildOutboxRelayDependencies(
  config: Config,
  { sources, kafka, logger, registry }: { sources: OutboxRelayDependencies['databases']; kafka: Kafka; logger: Logger; registry: Registry },
): OutboxRelayDependencies {
  return { databases: sources, kafka, config, logger, metrics: createOutboxMetrics(registry) };
}

export interface OutboxRelayStartOptions {
  databases?: readonly OutboxDatabaseName[];
  taskQueue?: string;
  input?: Omit<OutboxRelayInput, 'database'>;
  /** The relay workflow's id per database (tests use their own). */
  workflowIdOf?: (database: OutboxDatabaseName) => string;
}

/**
 * Starts the relay workflow of each database unless it already runs: the fixed workflow id with
 * USE_EXISTING makes a second start (another worker, a restart) a no-op.
 */
export async function startOutboxRelays(
  client: Client,
  { databases = OUTBOX_DATABASES, taskQueue = OUTBOX_TASK_QUEUE, input = {}, workflowIdOf = outboxRelayWorkflowId }: OutboxRelayStartOptions = {},
): Promise<string[]> {
  const started: string[] = [];
  for (const database of databases) {
    const handle = await client.workflow.start<typeof outboxRelayWorkflow>(OUTBOX_RELAY_WORKFLOW_TYPE, {
      workflowId: workflowIdOf(database),
      taskQueue,
      args: [{ ...input, database }],
      workflowIdConflictPolicy: 'USE_EXISTING',
    });
    started.push(handle.workflowId);
  }
  return started;
}

/**
 * What workers/main.ts runs besides the saga worker: the outbox worker, the relay workflows (started
 * if not running), the order timeline and catalogue consumers, their supervisors
 * (workers/supervision.ts) and the metrics endpoint of all of them.
 * `close` stops the consumer and releases everything once the Temporal workers have stopped.
 */
export async function startEventRelayAndConsumers({
  connection,
  config,
  identity,
  registry,
}: {
  connection: NativeConnection;
  config: Config;
  identity: string;
  /** The worker process's registry: the relay's and consumers' metrics join it, and it is served here. */
  registry: Registry;
}) {
  const logger = pino(loggerOptions(config, 'oms-worker'));
  const kafka = createKafka(config, `${config.KAFKA_CLIENT_ID}-worker`);
  // Kafka being down must not keep the saga worker from starting: the relay waits for it on its own.
  await ensureTopics(kafka, config).catch((error: unknown) => logger.warn({ err: String(error) }, 'could not ensure Kafka topics; continuing'));
  const { sources, close: closeSources } = openOutboxSources(config);
  const dependencies = buildOutboxRelayDependencies(config, { sources, kafka, logger, registry });
  const worker = await createOutboxWorker({ connection, config, identity, dependencies });
  // Until this process's relay completes a pass, its last success is its start: a relay that never works goes stale.
  for (const database of OUTBOX_DATABASES) dependencies.metrics.lastSuccess.setToCurrentTime({ db: `${database}_db` });
  const supervisionMetrics = createSupervisionMetrics(registry);

  // This connection stays open: the supervisor asks Temporal about the relay workflows at every pass.
  const clientConnection = await Connection.connect(temporalConnectionOptions(config));
  const client = new Client({ connection: clientConnection, namespace: config.TEMPORAL_NAMESPACE });
  const relays = await startOutboxRelays(client);
  logger.info({ relays }, 'outbox relay workflows running');
  const relaySupervisor = superviseOutboxRelays({ client, intervalMs: config.SUPERVISION_INTERVAL_MS, logger, metrics: supervisionMetrics });

  const orderDb = openWorkerDatabase(config, 'order', 'oms-order-consumers');
  // The lag is asked of the broker at each scrape; the admin client reconnects after an outage.
  const lagAdmin = kafka.admin();
  let lagAdminConnected: Promise<void> | undefined;
  const measureLag = (group: string, topics: readonly string[]) => async () => {
    lagAdminConnected ??= lagAdmin.connect().catch((error: unknown) => {
      lagAdminConnected = undefined;
      throw error;
    });
    await lagAdminConnected;
    return consumerGroupLag(lagAdmin, group, topics);
  };
  const consumerMetrics = createConsumerMetrics(registry, [
    { group: ORDER_TIMELINE_GROUP, measure: measureLag(ORDER_TIMELINE_GROUP, ORDER_TIMELINE_TOPICS) },
    { group: ORDER_CATALOGUE_GROUP, measure: measureLag(ORDER_CATALOGUE_GROUP, ORDER_CATALOGUE_TOPICS) },
  ]);
  // Each consumer under its own supervisor: Kafka down at start-up, a crash or a stall restarts it, and the rest of the worker runs.
  const supervise = (group: string, start: () => ReturnType<typeof startOrderTimelineConsumer>) =>
    superviseConsumer({
      group,
      start,
      intervalMs: config.SUPERVISION_INTERVAL_MS,
      stallMs: config.CONSUMER_STALL_RESTART_MS,
      logger,
      metrics: supervisionMetrics,
      consumerMetrics,
    });
  const consumerSupervisors = [
    supervise(ORDER_TIMELINE_GROUP, () => startOrderTimelineConsumer({ kafka, db: orderDb, logger, metrics: consumerMetrics })),
    supervise(ORDER_CATALOGUE_GROUP, () => startCatalogueConsumer({ kafka, db: orderDb, logger, metrics: consumerMetrics })),
  ];
  await Promise.all(consumerSupervisors.map((supervisor) => supervisor.started));
  const stopMetrics = await serveAppMetrics(registry, config, logger);
  return {
    worker,
    close: async () => {
      await relaySupervisor.stop();
      await Promise.all(consumerSupervisors.map((supervisor) => supervisor.stop()));
      await clientConnection.close();
      await stopMetrics();
      await lagAdmin.disconnect();
      await orderDb.destroy();
      await closeSources();
    },
  };
}
