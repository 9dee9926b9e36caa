/**
 * The outbox relay: moves committed outbox rows of one service database to Kafka.
 *
 * relayOutboxEvents is a long-running activity. For `runForMs`, while it holds the database's
 * publisher lock (see OUTBOX_RELAY_LOCK_KEY), it repeats: claim due PENDING rows in id order (one
 * short statement, see claimDueEvents), publish them as one batch with an idempotent producer
 * (acks=all, one request in flight, key = aggregate id: one produce request per partition leader),
 * then record the outcome (one statement marks the published rows). The next batch is claimed while
 * the current one is on its way to Kafka. With nothing due it sleeps until a writer's wake-up
 * (db/wake-up.ts) or the poll interval. Heartbeats come from a timer, so they stop exactly when the
 * worker process does. A relay without the lock is a hot standby that tries again on every pass.
 *
 * Order per aggregate: one relay publishes at a time; batches go out one after another, each in id
 * order; a row whose aggregate failed in the batch before is skipped (it waits for the failed event,
 * whose backoff then keeps it out of later claims).
 *
 * Delivery is at least once: a relay killed after sending but before marking leaves the rows
 * PENDING and they are sent again; consumers deduplicate by event id.
 */
import { Context } from '@temporalio/activity';
import type { Kafka, Message, Producer } from 'kafkajs';
import type { Kysely } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import { clientConfig, type DatabaseOptions } from '../../db/connection';
import { Doorbell, WAKE_UP_CHANNELS } from '../../db/wake-up';
import type { SharedTables } from '../../lib/shared-tables';
import type { Config } from '../../lib/config';
import { TOPICS, type TopicName } from '../../lib/kafka';
import {
  classifyPublishFailure,
  createDeliveryCheck,
  deadLetterHeaders,
  deadLetterValue,
  errorMessage,
  eventHeaders,
  publishFailureType,
  retryDelayMs,
  type DeliveryCheck,
  type PublishFailureKind,
  topicForEventType,
  UnsentMessagesError,
} from './relay';
import type { OutboxMetrics } from './metrics';
import {
  claimDueEvents,
  countPending,
  markFailed,
  markPublished,
  markRetry,
  purgePublished,
  tryTakeRelayLock,
  type OutboxRow,
} from './store';
import type { OutboxDatabaseName, RelayOutboxEventsInput, RelayRunSummary } from '../../workflows/outbox-relay-contract';

/** A service database as the relay needs it: a pool for claims and how to open the relay's own session. */
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

/** Raised (and retried by Temporal) when the session holding the publisher lock is gone: another relay may lead now. */
export class RelayLockLostError extends Error {
  override name = 'RelayLockLostError';
}

/**
 * The relay's own connection: it LISTENs on the outbox channel (rings the doorbell) and, once taken,
 * holds the publisher lock until it is closed. If it drops, the lock is gone with it.
 */
class RelaySession {
  private lost: Error | null = null;
  private leading = false;

  private constructor(private readonly client: pg.Client) {}

  static async open(listener: DatabaseOptions, doorbell: Doorbell, logger: Logger): Promise<RelaySession> {
    // The pools' session timeouts are harmless here: this session is idle, never in a transaction.
    const client = new pg.Client(clientConfig({ ...listener, applicationName: 'oms-outbox-listener' }));
    const session = new RelaySession(client);
    client.on('notification', () => doorbell.ring());
    client.on('error', (error) => {
      session.lost = error;
      doorbell.ring();
      logger.warn({ err: error.message }, 'outbox relay session lost; this run stops and the next one starts afresh');
    });
    await client.connect();
    await client.query(`LISTEN ${WAKE_UP_CHANNELS.outbox}`);
    return session;
  }

  /** True once this session holds the publisher lock (kept until close). */
  async lead(): Promise<boolean> {
    this.assertAlive();
    if (!this.leading) this.leading = await tryTakeRelayLock(this.client);
    return this.leading;
  }

  assertAlive(): void {
    if (this.lost) throw new RelayLockLostError(`outbox relay session lost: ${this.lost.message}`);
  }

  close(): Promise<void> {
    return this.client.end().catch(() => undefined);
  }
}

/** What happened to one claimed row. Rows skipped behind their aggregate's failed event have none. */
type RowOutcome =
  | { row: OutboxRow; topic: TopicName; result: 'published' }
  | { row: OutboxRow; topic: TopicName; result: 'retry'; kind: PublishFailureKind; attempts: number; reason: string; delayMs: number }
  | { row: OutboxRow; topic: TopicName; result: 'deadLettered'; attempts: number; reason: string };

interface BatchOutcome {
  rows: RowOutcome[];
  /** Aggregates with a failed event in this batch: their events in the next (already claimed) batch wait too. */
  held: Set<string>;
  /** Set when the broker was unreachable: the batch stopped at the row that found out. */
  unavailable?: unknown;
}

/** How long a run waits for its producer to disconnect; past it the producer is left to the garbage collector. */
const PRODUCER_DISCONNECT_BOUND_MS = 5_000;

/** Waits for `work` to settle, at most `ms`; its outcome is ignored either way. */
async function settledWithin(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work.catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

const aggregateKey = (row: OutboxRow) => `${row.aggregate_type}\u0000${row.aggregate_id}`;

function toMessage(row: OutboxRow): Message {
  return { key: row.aggregate_id, value: row.payload_json, headers: eventHeaders(row) };
}

export function createOutboxRelayActivities({ databases, kafka, config, logger, metrics }: OutboxRelayDependencies) {
  function sourceFor(database: OutboxDatabaseName): OutboxSource {
    const source = databases[database];
    if (!source) throw new Error(`this worker has no connection to the ${database} database`);
    return source;
  }

  /** The rows that may go out now: in id order, minus those behind a failed event of their aggregate. */
  function sendable(rows: OutboxRow[], held: Set<string>): OutboxRow[] {
    return held.size === 0 ? rows : rows.filter((row) => !held.has(aggregateKey(row)));
  }

  /**
   * Publishes `rows` as one batch. If the broker refuses the batch, the rows go again one at a
   * time, so that the event at fault is found and only its retries are counted; a batch the broker
   * could not take at all counts one failed attempt on its first row, which the others wait behind.
   */
  async function publishRows(producer: Producer, delivery: DeliveryCheck, rows: OutboxRow[], dbLabel: string): Promise<BatchOutcome> {
    const topics = rows.map((row) => topicForEventType(row.event_type));
    const messages = rows.map(toMessage);
    const byTopic = new Map<TopicName, Message[]>();
    rows.forEach((_, i) => {
      const topicMessages = byTopic.get(topics[i]!) ?? [];
      topicMessages.push(messages[i]!);
      byTopic.set(topics[i]!, topicMessages);
    });
    const batch = [...byTopic].map(([topic, topicMessages]) => ({ topic, messages: topicMessages }));
    const endTimer = metrics.publishDuration.startTimer({ db: dbLabel });
    try {
      const unsent = delivery.unsent(batch, await producer.sendBatch({ acks: -1, topicMessages: batch }));
      endTimer();
      if (unsent.size === 0) return { rows: rows.map((row, i) => ({ row, topic: topics[i]!, result: 'published' })), held: new Set() };
      // An aggregate's events share a partition, so each aggregate went out whole or not at all:
      // the sent rows are published, the unsent ones wait (and their aggregates with them) for the next run.
      const outcome: BatchOutcome = { rows: [], held: new Set() };
      const firstUnsent = rows.findIndex((_, i) => unsent.has(messages[i]!));
      rows.forEach((row, i) => {
        if (unsent.has(messages[i]!)) outcome.held.add(aggregateKey(row));
        else outcome.rows.push({ row, topic: topics[i]!, result: 'published' });
      });
      const error = new UnsentMessagesError(`the producer resolved without sending ${unsent.size} of ${rows.length} events (a partition leader changed mid-send)`);
      outcome.rows.push(await recordFailedAttempt(producer, rows[firstUnsent]!, topics[firstUnsent]!, error, dbLabel, outcome));
      return outcome;
    } catch (error) {
      if (classifyPublishFailure(error) === 'unavailable') {
        const first = rows[0]!;
        const outcome: BatchOutcome = { rows: [], held: new Set(rows.map(aggregateKey)) };
        outcome.rows.push(await recordFailedAttempt(producer, first, topics[0]!, error, dbLabel, outcome));
        return outcome;
      }
      return publishOneByOne(producer, rows, topics, dbLabel);
    }
  }

  async function publishOneByOne(producer: Producer, rows: OutboxRow[], topics: TopicName[], dbLabel: string): Promise<BatchOutcome> {
    const outcome: BatchOutcome = { rows: [], held: new Set() };
    for (const [i, row] of rows.entries()) {
      if (outcome.held.has(aggregateKey(row))) continue;
      const topic = topics[i]!;
      try {
        await producer.send({ topic, acks: -1, messages: [toMessage(row)] });
        outcome.rows.push({ row, topic, result: 'published' });
      } catch (error) {
        outcome.held.add(aggregateKey(row));
        outcome.rows.push(await recordFailedAttempt(producer, row, topic, error, dbLabel, outcome));
        // Sending the rest of the batch into a dead broker would only burn their retry budgets.
        if (outcome.unavailable !== undefined) break;
      }
    }
    return outcome;
  }

  /** One failed attempt of one event: dead-lettered when it is the event's fault and its retries are spent, else retried later. */
  async function recordFailedAttempt(producer: Producer, row: OutboxRow, topic: TopicName, error: unknown, dbLabel: string, outcome: BatchOutcome): Promise<RowOutcome> {
    const kind = classifyPublishFailure(error);
    metrics.publishErrors.inc({ db: dbLabel, kind });
    if (kind === 'unavailable') outcome.unavailable = error;
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
              value: deadLetterValue(Buffer.from(row.payload_json), eventFields(row)),
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
        return { row, topic, result: 'deadLettered', attempts, reason };
      } catch (dlqError) {
        // Not FAILED without a dead letter: the row stays PENDING and is tried again.
        reason = `${reason}; dead letter not published: ${errorMessage(dlqError)}`;
        if (classifyPublishFailure(dlqError) === 'unavailable') outcome.unavailable = dlqError;
      }
    }
    return { row, topic, result: 'retry', kind, attempts, reason, delayMs: retryDelayMs(attempts, config.OUTBOX_RETRY_BASE_MS, config.OUTBOX_RETRY_MAX_MS) };
  }

  /** Writes what happened: one statement for the published rows, one per failed row (rare), in one transaction. */
  async function recordOutcome(db: Kysely<SharedTables>, outcome: BatchOutcome, dbLabel: string, log: Logger, summary: RelayRunSummary): Promise<void> {
    const publishedIds: number[] = [];
    const failures = outcome.rows.filter((o) => o.result !== 'published');
    for (const o of outcome.rows) if (o.result === 'published') publishedIds.push(o.row.id);
    if (failures.length === 0) {
      await markPublished(db, publishedIds);
    } else {
      await db.transaction().execute(async (trx) => {
        await markPublished(trx, publishedIds);
        for (const o of failures) {
          if (o.result === 'deadLettered') await markFailed(trx, o.row.id, o.attempts, o.reason);
          else if (o.result === 'retry') await markRetry(trx, o.row.id, o.attempts, o.reason, o.delayMs);
        }
      });
    }
    const publishedPerTopic = new Map<TopicName, number>();
    for (const o of outcome.rows) {
      if (o.result === 'published') {
        publishedPerTopic.set(o.topic, (publishedPerTopic.get(o.topic) ?? 0) + 1);
        log.info({ ...eventFields(o.row), topic: o.topic }, 'EVENT_PUBLISHED');
      } else if (o.result === 'deadLettered') {
        metrics.failed.inc({ db: dbLabel });
        log.error({ ...eventFields(o.row), topic: o.topic, attempts: o.attempts, reason: o.reason }, 'EVENT_DEAD_LETTERED');
      } else {
        log.warn({ ...eventFields(o.row), topic: o.topic, attempts: o.attempts, kind: o.kind, delayMs: o.delayMs, reason: o.reason }, 'outbox publish failed; will retry');
      }
    }
    for (const [topic, count] of publishedPerTopic) metrics.published.inc({ db: dbLabel, topic }, count);
    summary.published += publishedIds.length;
    summary.deadLettered += failures.filter((o) => o.result === 'deadLettered').length;
    summary.retried += failures.filter((o) => o.result === 'retry').length;
    summary.batches += 1;
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
      const delivery = createDeliveryCheck();
      const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, createPartitioner: delivery.createPartitioner });
      const batchSize = config.OUTBOX_BATCH_SIZE;
      let session: RelaySession | undefined;
      // The claim made while the previous batch was being published (nothing is locked by a claim).
      let nextClaim: Promise<OutboxRow[]> | undefined;
      try {
        session = await RelaySession.open(source.listener, doorbell, log);
        try {
          await producer.connect();
        } catch (error) {
          throw new KafkaUnavailableError(`cannot connect to Kafka: ${errorMessage(error)}`);
        }
        const deadline = Date.now() + runForMs;
        const signal = context.cancellationSignal;
        let pendingMeasuredAt = 0;
        // The gauge is a count over the PENDING index: once a second is plenty, and keeps it out of the hot loop.
        const refreshPendingGauge = async () => {
          if (Date.now() - pendingMeasuredAt < 1_000) return;
          pendingMeasuredAt = Date.now();
          metrics.pendingCount.set({ db: dbLabel }, await countPending(source.db));
        };
        // The doorbell is cleared as a claim starts: a NOTIFY after that is for rows the claim may have missed.
        const claim = (inFlight: readonly number[]) => {
          doorbell.clear();
          const claiming = claimDueEvents(source.db, batchSize, inFlight);
          // Awaited in the loop (or in finally); this keeps a failure meanwhile from being an unhandled rejection.
          claiming.catch(() => undefined);
          return claiming;
        };
        let held = new Set<string>();
        while (!signal.aborted && Date.now() < deadline) {
          if (!(await session.lead())) {
            summary.standbyPasses += 1;
            doorbell.clear();
            await doorbell.wait(Math.min(config.OUTBOX_POLL_INTERVAL_MS, deadline - Date.now()), signal);
            continue;
          }
          const claimed = await (nextClaim ?? claim([]));
          nextClaim = undefined;
          session.assertAlive();
          if (claimed.length === 0) {
            // Nothing due is a healthy pass too: the stall alert must not fire on an idle database.
            metrics.lastSuccess.setToCurrentTime({ db: dbLabel });
            pendingMeasuredAt = 0;
            await refreshPendingGauge();
            await doorbell.wait(Math.min(config.OUTBOX_POLL_INTERVAL_MS, deadline - Date.now()), signal);
            continue;
          }
          const rows = sendable(claimed, held);
          held = new Set();
          if (rows.length === 0) continue;
          const publishing = publishRows(producer, delivery, rows, dbLabel);
          // The next batch is claimed while this one is on its way to Kafka.
          nextClaim = claim(claimed.map((row) => row.id));
          const outcome = await publishing;
          await recordOutcome(source.db, outcome, dbLabel, log, summary);
          held = outcome.held;
          if (outcome.unavailable !== undefined) {
            pendingMeasuredAt = 0;
            await refreshPendingGauge();
            throw new KafkaUnavailableError(`Kafka unavailable, events stay PENDING: ${errorMessage(outcome.unavailable)}`);
          }
          // A pass that published as the database's publisher: the stall alert's signal.
          metrics.lastSuccess.setToCurrentTime({ db: dbLabel });
          await refreshPendingGauge();
        }
        if (signal.aborted) throw signal.reason;
        log.info(summary, 'outbox relay run finished');
        return summary;
      } finally {
        // Heartbeats go on until the cleanup is over: with the brokers down a disconnect can hang,
        // and a silent attempt would be failed as a heartbeat timeout, hiding why it really failed.
        try {
          // A claim still under way locks nothing; it is only waited for so no query outlives the run.
          await nextClaim?.catch(() => undefined);
          await settledWithin(producer.disconnect(), PRODUCER_DISCONNECT_BOUND_MS);
          await session?.close();
        } finally {
          clearInterval(heartbeats);
        }
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
