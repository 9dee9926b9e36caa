/**
 * Supervision of the worker's two long-running parts that nothing else would restart.
 *
 * The outbox relay workflows: Temporal already keeps the relay activity going (a dead worker's
 * heartbeats stop and the activity moves; a failed run is retried with backoff), but a relay
 * workflow that was terminated, failed or timed out stays closed. Every SUPERVISION_INTERVAL_MS the
 * supervisor asks Temporal whether each relay workflow runs and starts a new run of any that does not.
 *
 * The timeline consumer: kafkajs restarts it after retriable errors. The supervisor restarts it when
 * kafkajs gives up (a crash it does not restart from), when it stops without being asked, and when
 * it has made no progress for CONSUMER_STALL_RESTART_MS: no batch finished and no fetch cycle that
 * found nothing to do. Progress sets oms_consumer_last_success_timestamp_seconds.
 *
 * Every restart is logged (SUPERVISED_RESTART) and counted in oms_supervisor_restarts_total.
 */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { ConsumerMetrics } from './outbox-relay/metrics';
import { OUTBOX_DATABASES, outboxRelayWorkflowId, type OutboxDatabaseName } from '../workflows/outbox-relay-contract';
import type { RunningConsumer } from './order-events-consumer';
import { startOutboxRelays, type OutboxRelayStartOptions } from './outbox-worker';

export function createSupervisionMetrics(registry: Registry) {
  return {
    restarts: new Counter({
      name: 'oms_supervisor_restarts_total',
      help: 'Restarts of a relay workflow or consumer by the worker supervisor, by component and reason',
      labelNames: ['component', 'reason'] as const,
      registers: [registry],
    }),
  };
}

export type SupervisionMetrics = ReturnType<typeof createSupervisionMetrics>;

export interface Supervisor {
  /** One supervision pass now (the timer runs them every interval). */
  check: () => Promise<void>;
  stop: () => Promise<void>;
}

function every(intervalMs: number, pass: () => Promise<void>): { stop: () => void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const schedule = () => {
    if (!stopped) timer = setTimeout(() => void pass().finally(schedule), intervalMs);
  };
  schedule();
  return {
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** Starts a new run of every relay workflow that is not running (terminated, failed, timed out, never started). */
export function superviseOutboxRelays({
  client,
  intervalMs,
  logger,
  metrics,
  relays = {},
}: {
  client: Client;
  intervalMs: number;
  logger: Logger;
  metrics: SupervisionMetrics;
  relays?: OutboxRelayStartOptions;
}): Supervisor {
  const { databases = OUTBOX_DATABASES, workflowIdOf = outboxRelayWorkflowId } = relays;
  const log = logger.child({ component: 'supervisor' });
  const check = async () => {
    for (const database of databases) {
      const workflowId = workflowIdOf(database);
      let status = 'NOT_FOUND';
      try {
        status = (await client.workflow.getHandle(workflowId).describe()).status.name;
      } catch (error) {
        if (!(error instanceof WorkflowNotFoundError)) {
          // Temporal unreachable: nothing to decide; the next pass asks again.
          log.warn({ workflowId, err: String(error) }, 'cannot see the outbox relay workflow; checking again later');
          continue;
        }
      }
      if (status === 'RUNNING') continue;
      await restartRelay(database, status);
    }
  };
  const restartRelay = async (database: OutboxDatabaseName, status: string) => {
    const workflowId = workflowIdOf(database);
    try {
      await startOutboxRelays(client, { ...relays, databases: [database] });
      metrics.restarts.inc({ component: `outbox-relay-${database}_db`, reason: status.toLowerCase() });
      log.warn({ workflowId, previousStatus: status }, 'SUPERVISED_RESTART: outbox relay workflow was not running; started a new run');
    } catch (error) {
      log.error({ workflowId, err: String(error) }, 'restarting the outbox relay workflow failed; trying again later');
    }
  };
  const timer = every(intervalMs, check);
  return { check, stop: async () => timer.stop() };
}

/**
 * Keeps one consumer running: `start` builds and runs it (the supervisor retries a failed start at
 * each pass). `current` is the consumer running now, if any.
 */
export function superviseConsumer({
  group,
  start,
  intervalMs,
  stallMs,
  logger,
  metrics,
  consumerMetrics,
}: {
  group: string;
  start: () => Promise<RunningConsumer>;
  intervalMs: number;
  stallMs: number;
  logger: Logger;
  metrics: SupervisionMetrics;
  consumerMetrics: Pick<ConsumerMetrics, 'lastSuccess'>;
}): Supervisor & { current: () => RunningConsumer | undefined; started: Promise<void> } {
  const log = logger.child({ component: 'supervisor', group });
  let running: RunningConsumer | undefined;
  let busy = false;
  let closing = false;
  let lastSuccessMs = Date.now();
  const markSuccess = () => {
    lastSuccessMs = Date.now();
    consumerMetrics.lastSuccess.set({ group }, lastSuccessMs / 1000);
  };

  const launch = async (): Promise<void> => {
    let launched: RunningConsumer;
    try {
      launched = await start();
    } catch (error) {
      log.warn({ err: String(error) }, 'consumer could not start; the supervisor tries again at its next pass');
      return;
    }
    if (closing) {
      await launched.stop();
      return;
    }
    running = launched;
    markSuccess();
    const { consumer } = launched;
    // A fetch cycle with no batch in it means the consumer is caught up and alive.
    let fetched = false;
    let sawBatch = false;
    consumer.on(consumer.events.FETCH, () => {
      fetched = true;
    });
    consumer.on(consumer.events.START_BATCH_PROCESS, () => {
      sawBatch = true;
    });
    consumer.on(consumer.events.FETCH_START, () => {
      if (fetched && !sawBatch) markSuccess();
      fetched = false;
      sawBatch = false;
    });
    consumer.on(consumer.events.END_BATCH_PROCESS, markSuccess);
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (!payload.restart) void restart(launched, 'crashed', String(payload.error));
    });
    consumer.on(consumer.events.STOP, () => void restart(launched, 'stopped'));
  };

  const restart = async (which: RunningConsumer, reason: string, detail?: string): Promise<void> => {
    // Our own stop (a restart in progress, shutdown) also emits STOP: only the current consumer counts.
    if (closing || busy || running !== which) return;
    busy = true;
    running = undefined;
    try {
      metrics.restarts.inc({ component: `consumer-${group}`, reason });
      log.warn({ reason, detail, lastSuccess: new Date(lastSuccessMs).toISOString() }, 'SUPERVISED_RESTART: restarting the consumer');
      // A consumer stuck in a handler may never finish disconnecting: do not wait for it forever.
      await Promise.race([which.stop().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
      if (!closing) await launch();
    } finally {
      busy = false;
    }
  };

  const check = async () => {
    if (closing || busy) return;
    if (running === undefined) {
      busy = true;
      try {
        await launch();
      } finally {
        busy = false;
      }
      return;
    }
    if (Date.now() - lastSuccessMs > stallMs) await restart(running, 'stalled');
  };

  const started = (async () => {
    busy = true;
    try {
      await launch();
    } finally {
      busy = false;
    }
  })();
  const timer = every(intervalMs, check);
  return {
    check,
    started,
    current: () => running,
    stop: async () => {
      closing = true;
      timer.stop();
      await started;
      await running?.stop();
      running = undefined;
    },
  };
}
