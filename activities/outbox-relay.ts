/**
 * The outbox relay: moves committed outbox rows of one service database to Kafka.
 *
 * relayOutboxEvents is a long-running activity. For `runForMs` it claims due PENDING rows in id
 * order (see claimDueEvents), publishes each with an idempotent producer (acks=all, one request in
 * flight, key = aggregate id) and marks it PUBLISHED, all inside the claim's transaction; then it
 * sleeps until the outbox trigger's NOTIFY or the poll interval. Heartbeats come from a timer, so
 * they stop exactly when the worker process does. Only one relay publishes from a database at a
 * time (advisory lock); a second one is a hot standby.
 *
 * Delivery is at least once: a relay killed after sending but before its transaction commits
 * leaves the rows PENDING and they are sent again; consumers deduplicate by event id.
 */
import { Context } from '@temporalio/activity';
import type { Kafka, Producer } from 'kafkajs';
import type { Kysely } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import { clientConfig, type DatabaseOptions } from '../db/connection';
import { OUTBOX_NOTIFY_CHANNEL } from '../db/shared-migrations';
import type { SharedTables } from '../db/shared-tables';
import type { Config } from '../services/shared/config';
import { TOPICS } from '../services/shared/kafka';
import {
  classifyPublishFailure,
  deadLetterHeaders,
  deadLetterValue,
  errorMessage,
  eventHeaders,
  publishFailureType,
  retryDelayMs,
  topicForEventType,
} from '../services/shared/outbox-relay';
import type { OutboxMetrics } from '../services/shared/outbox-relay-metrics';
import {
  claimDueEvents,
  countPending,
  markFailed,
  markPublished,
  markRetry,
  purgePublished,
  tryTakeRelayLock,
  type OutboxRow,
} from '../services/shared/outbox-relay-store';
import type { OutboxDatabaseName, RelayOutboxEventsInput, RelayRunSummary } from '../workflows/outbox-relay-contract';

/** A service database as the relay needs it: a pool for claims and how to open the LISTEN connection. */
export interface OutboxSource {
  db: Kysely<SharedTables>;
  listener: DatabaseOptions;
}

export type OutboxRelayConfig = Pick<
  Config,
  'OUTBOX_BATCH_SIZE' | 'OUTBOX_MAX_RETRIES' | 'OUTBOX_POLL_INTERVAL_MS' | 'OUTBOX_RETRY_BASE_MS' | 'OUTBOX_RETRY_MAX_MS' | 'OUTBOX_RETENTION_HOURS'
>;

export interface OutboxRelayDependencies {
  databases: Partial<Record<OutboxDatabaseName, OutboxSource>>;
  kafka: Kafka;
  config: OutboxRelayConfig;
  logger: Logger;
  metrics: OutboxMetrics;
}

/** Raised (and retried by Temporal) when the broker cannot be reached; the rows stay PENDING. */
export class KafkaUnavailableError extends Error {
  override name = 'KafkaUnavailableError';
}

/** Wakes the relay loop. A ring that arrives while a batch is running is remembered, not lost. */
class Doorbell {
  private rung = false;
  private wake: (() => void) | null = null;

  ring(): void {
    this.rung = true;
    this.wake?.();
  }

  clear(): void {
    this.rung = false;
  }

  wait(ms: number, signal: AbortSignal): Promise<void> {
    if (this.rung || ms <= 0 || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.wake = done;
    });
  }
}

/** A dedicated connection LISTENing on the outbox channel; if it drops, the poll interval still wakes the relay. */
async function listenForNewEvents(listener: DatabaseOptions, doorbell: Doorbell, logger: Logger): Promise<() => Promise<void>> {
  // The pools' session timeouts are harmless here: a listening session is idle, never in a transaction.
  const client = new pg.Client(clientConfig({ ...listener, applicationName: 'oms-outbox-listener' }));
  client.on('notification', () => doorbell.ring());
  client.on('error', (error) => logger.warn({ err: error.message }, 'outbox LISTEN connection lost; polling until the next relay run'));
  await client.connect();
  await client.query(`LISTEN ${OUTBOX_NOTIFY_CHANNEL}`);
  return () => client.end().catch(() => undefined);
}

interface BatchOutcome extends RelayRunSummary {
  claimed: number;
  /** Set when the broker was unreachable: the batch stopped at the row that found out. */
  unavailable?: unknown;
}

export function createOutboxRelayActivities({ databases, kafka, config, logger, metrics }: OutboxRelayDependencies) {
  function sourceFor(database: OutboxDatabaseName): OutboxSource {
    const source = databases[database];
    if (!source) throw new Error(`this worker has no connection to the ${database} database`);
    return source;
  }

  async function publishBatch(source: OutboxSource, dbLabel: string, producer: Producer, log: Logger): Promise<BatchOutcome> {
    return source.db.transaction().execute(async (trx) => {
      const outcome: BatchOutcome = { claimed: 0, published: 0, deadLettered: 0, retried: 0, batches: 0, standbyPasses: 0 };
      if (!(await tryTakeRelayLock(trx))) {
        outcome.standbyPasses = 1;
        return outcome;
      }
      const rows = await claimDueEvents(trx, config.OUTBOX_BATCH_SIZE);
      outcome.claimed = rows.length;
      outcome.batches = rows.length > 0 ? 1 : 0;
      // Once an aggregate's event fails, its later events in this batch wait for it.
      const held = new Set<string>();
      for (const row of rows) {
        const aggregate = `${row.aggregate_type}\u0000${row.aggregate_id}`;
        if (held.has(aggregate)) continue;
        const topic = topicForEventType(row.event_type);
        const value = Buffer.from(JSON.stringify(row.payload));
        const endTimer = metrics.publishDuration.startTimer({ db: dbLabel });
        try {
          await producer.send({ topic, acks: -1, messages: [{ key: row.aggregate_id, value, headers: eventHeaders(row) }] });
          endTimer();
          await markPublished(trx, row.id);
          metrics.published.inc({ db: dbLabel, topic });
          outcome.published += 1;
          log.info({ ...eventFields(row), topic }, 'EVENT_PUBLISHED');
          continue;
        } catch (error) {
          held.add(aggregate);
          const kind = classifyPublishFailure(error);
          metrics.publishErrors.inc({ db: dbLabel, kind });
          const attempts = row.retry_count + 1;
          let reason = `${publishFailureType(error)}: ${errorMessage(error)}`;
          if (kind === 'rejected' && attempts >= config.OUTBOX_MAX_RETRIES) {
            try {
              await producer.send({
                topic: TOPICS.deadLetters,
                acks: -1,
                messages: [
                  {
                    key: row.aggregate_id,
                    value: deadLetterValue(value, eventFields(row)),
                    headers: {
                      ...eventHeaders(row),
                      ...deadLetterHeaders(
                        { source: 'outbox-relay', reason, errorType: publishFailureType(error), originalTopic: topic, sourceDb: dbLabel, retryCount: attempts },
                        new Date(),
                      ),
                    },
                  },
                ],
              });
              await markFailed(trx, row.id, attempts, reason);
              metrics.failed.inc({ db: dbLabel });
              outcome.deadLettered += 1;
              log.error({ ...eventFields(row), topic, attempts, reason }, 'EVENT_DEAD_LETTERED');
              continue;
            } catch (dlqError) {
              // Not FAILED without a dead letter: the row stays PENDING and is tried again.
              reason = `${reason}; dead letter not published: ${errorMessage(dlqError)}`;
              if (classifyPublishFailure(dlqError) === 'unavailable') outcome.unavailable = dlqError;
            }
          }
          const delayMs = retryDelayMs(attempts, config.OUTBOX_RETRY_BASE_MS, config.OUTBOX_RETRY_MAX_MS);
          await markRetry(trx, row.id, attempts, reason, delayMs);
          outcome.retried += 1;
          log.warn({ ...eventFields(row), topic, attempts, kind, delayMs, reason }, 'outbox publish failed; will retry');
          if (kind === 'unavailable') outcome.unavailable = error;
          // Sending the rest of the batch into a dead broker would only burn their retry budgets.
          if (outcome.unavailable !== undefined) break;
        }
      }
      return outcome;
    });
  }

  return {
    /** Relays one database's outbox for `runForMs`, then returns what it did. */
    async relayOutboxEvents({ database, runForMs }: RelayOutboxEventsInput): Promise<RelayRunSummary> {
      const context = Context.current();
      const source = sourceFor(database);
      const dbLabel = `${database}_db`;
      const log = logger.child({ component: 'outbox-relay', db: dbLabel, attempt: context.info.attempt });
      const summary: RelayRunSummary = { published: 0, deadLettered: 0, retried: 0, batches: 0, standbyPasses: 0 };
      const heartbeatEveryMs = Math.max(100, Math.floor((context.info.heartbeatTimeoutMs ?? 30_000) / 3));
      const heartbeats = setInterval(() => context.heartbeat(summary), heartbeatEveryMs);
      const doorbell = new Doorbell();
      // kafkajs warns that bounded retries weaken an idempotent producer's exactly-once: we want them
      // bounded, so a dead broker fails the run (rows stay PENDING) instead of blocking it forever;
      // a resend after that is the at-least-once duplicate consumers already deduplicate.
      const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
      let stopListening: (() => Promise<void>) | undefined;
      try {
        stopListening = await listenForNewEvents(source.listener, doorbell, log);
        try {
          await producer.connect();
        } catch (error) {
          throw new KafkaUnavailableError(`cannot connect to Kafka: ${errorMessage(error)}`);
        }
        const deadline = Date.now() + runForMs;
        const signal = context.cancellationSignal;
        while (!signal.aborted && Date.now() < deadline) {
          doorbell.clear();
          const outcome = await publishBatch(source, dbLabel, producer, log);
          summary.published += outcome.published;
          summary.deadLettered += outcome.deadLettered;
          summary.retried += outcome.retried;
          summary.batches += outcome.batches;
          summary.standbyPasses += outcome.standbyPasses;
          if (outcome.unavailable !== undefined) {
            metrics.pendingCount.set({ db: dbLabel }, await countPending(source.db));
            throw new KafkaUnavailableError(`Kafka unavailable, events stay PENDING: ${errorMessage(outcome.unavailable)}`);
          }
          // A pass that published (or found nothing due) as the database's publisher: the stall alert's signal.
          if (outcome.standbyPasses === 0) metrics.lastSuccess.setToCurrentTime({ db: dbLabel });
          // A full batch means more rows are probably due: go again without waiting.
          if (outcome.claimed >= config.OUTBOX_BATCH_SIZE) continue;
          metrics.pendingCount.set({ db: dbLabel }, await countPending(source.db));
          await doorbell.wait(Math.min(config.OUTBOX_POLL_INTERVAL_MS, deadline - Date.now()), signal);
        }
        if (signal.aborted) throw signal.reason;
        log.info(summary, 'outbox relay run finished');
        return summary;
      } finally {
        clearInterval(heartbeats);
        await producer.disconnect().catch(() => undefined);
        await stopListening?.();
      }
    },

    /** Deletes PUBLISHED rows older than OUTBOX_RETENTION_HOURS; returns how many. */
    async purgePublishedOutboxEvents({ database }: { database: OutboxDatabaseName }): Promise<number> {
      const purged = await purgePublished(sourceFor(database).db, config.OUTBOX_RETENTION_HOURS);
      if (purged > 0) logger.info({ component: 'outbox-relay', db: `${database}_db`, purged }, 'published outbox events purged');
      return purged;
    },
  };
}

function eventFields(row: OutboxRow) {
  return {
    eventId: row.event_id,
    eventType: row.event_type,
    aggregateType: row.aggregate_type,
    aggregateId: row.aggregate_id,
    correlationId: row.correlation_id,
  };
}

export type OutboxRelayActivities = ReturnType<typeof createOutboxRelayActivities>;
