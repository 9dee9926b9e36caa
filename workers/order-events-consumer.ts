/**
 * The order service's consumers: the timeline one reads the order, stock and payment event topics
 * into order_db's order_events, each event applied once (services/order/timeline.ts); the catalogue
 * one (startCatalogueConsumer) keeps order_db's catalogue_products, the prices orders are accepted
 * at, current from the product events (services/order/product-catalog.ts).
 *
 * Messages are applied a fetched batch at a time (the timeline: one transaction writes the batch's
 * inbox and timeline rows), and the batch's offset is committed only after that (auto-commit is
 * off), so a crash re-delivers the batch, and the inbox (the catalogue: the price version) makes the
 * re-delivery a no-op. A message that cannot be parsed, or whose handling keeps failing, goes to oms.dlq with headers saying why, and only then is
 * committed past: nothing is dropped. When the database itself is unreachable nothing is
 * dead-lettered: the batch fails, nothing is committed, and kafkajs restarts the consumer.
 */
import type { Consumer, Kafka, KafkaMessage, Producer } from 'kafkajs';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { OrderDatabase } from '../db/order/schema';
import { parseEvent, type EventEnvelope } from '../lib/events';
import { TOPICS } from '../lib/kafka';
import { deadLetterHeaders, deadLetterValue, errorMessage, headerString } from './outbox-relay/relay';
import type { ConsumerMetrics } from './outbox-relay/metrics';
import { applyCatalogueEvent, isCatalogueEvent } from '../services/order/product-catalog';
import { recordTimelineEvents, type ConsumedEvent } from '../services/order/timeline';

export const ORDER_TIMELINE_GROUP = 'oms-order-timeline';
export const ORDER_TIMELINE_TOPICS = [TOPICS.orderEvents, TOPICS.productEvents, TOPICS.paymentEvents] as const;

export interface OrderTimelineConsumerOptions {
  kafka: Kafka;
  db: Kysely<OrderDatabase>;
  logger: Logger;
  metrics: ConsumerMetrics;
  /** Consumer group, also the inbox's consumer name. */
  groupId?: string;
  /** Attempts at applying one message before it is dead-lettered. */
  maxAttempts?: number;
  retryDelayMs?: number;
  /** A new group starts at the beginning of the topics (every retained event reaches the timeline). */
  fromBeginning?: boolean;
  /** Where messages it cannot apply go (tests use their own topic). */
  deadLetterTopic?: string;
  /** The topics it reads (tests use their own, so their messages never reach the stack's consumer). */
  topics?: readonly string[];
  /**
   * Applies a batch of events, each once, and returns the ids of those it applied now (the others
   * had been applied before). The timeline's recordTimelineEvents (one transaction) by default; the
   * catalogue read model's consumer passes its own.
   */
  apply?: (events: readonly ConsumedEvent[]) => Promise<Set<string>>;
}

export interface RunningConsumer {
  consumer: Consumer;
  stop: () => Promise<void>;
}

type Outcome = 'applied' | 'duplicate' | 'dead_lettered';
/** The event_type label of a message that could not be parsed into an event. */
const UNPARSEABLE = 'unparseable';

class DatabaseUnavailableError extends Error {
  override name = 'DatabaseUnavailableError';
}

/** Connection-level failures (server down, restarting, out of connections): the message is fine. */
function isDatabaseUnavailable(error: unknown): boolean {
  const e = error as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  if (/^(08|53|57P)/.test(code) || ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND'].includes(code)) return true;
  return (
    typeof e.message === 'string' &&
    /Connection terminated|connection timeout|Client has encountered a connection error|not currently accepting connections/i.test(e.message)
  );
}

/** A fetched batch is applied in transactions of at most this many messages (bounded statements). */
const MAX_MESSAGES_PER_TRANSACTION = 1_000;

const nextOffset = (offset: string) => (BigInt(offset) + 1n).toString();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startOrderTimelineConsumer({
  kafka,
  db,
  logger,
  metrics,
  groupId = ORDER_TIMELINE_GROUP,
  maxAttempts = 5,
  retryDelayMs = 200,
  fromBeginning = true,
  deadLetterTopic = TOPICS.deadLetters,
  topics = ORDER_TIMELINE_TOPICS,
  apply = (events) => recordTimelineEvents(db, groupId, events),
}: OrderTimelineConsumerOptions): Promise<RunningConsumer> {
  const log = logger.child({ component: 'order-timeline-consumer', group: groupId });
  const consumer = kafka.consumer({ groupId, allowAutoTopicCreation: false });
  const producer: Producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });

  async function deadLetter(topic: string, partition: number, message: KafkaMessage, reason: string, errorType: string, event?: EventEnvelope): Promise<void> {
    const value = message.value ?? Buffer.alloc(0);
    await producer.send({
      topic: deadLetterTopic,
      acks: -1,
      messages: [
        {
          key: message.key,
          value: deadLetterValue(value, { originalTopic: topic, partition, offset: message.offset }),
          headers: {
            ...message.headers,
            ...deadLetterHeaders(
              {
                source: `consumer:${groupId}`,
                reason,
                errorType,
                originalTopic: topic,
                originalPartition: partition,
                originalOffset: message.offset,
                eventId: event?.eventId ?? headerString(message.headers, 'event-id'),
                eventType: event?.eventType ?? headerString(message.headers, 'event-type'),
                correlationId: event?.correlationId ?? headerString(message.headers, 'correlation-id'),
              },
              new Date(),
            ),
          },
        },
      ],
    });
    log.error({ topic, partition, offset: message.offset, reason, errorType, eventId: event?.eventId }, 'EVENT_DEAD_LETTERED');
  }

  /** The event in `message`, or null once it has been dead-lettered as unparseable. */
  async function parseMessage(topic: string, partition: number, message: KafkaMessage): Promise<EventEnvelope | null> {
    let event: EventEnvelope;
    try {
      event = parseEvent(JSON.parse(message.value?.toString('utf8') ?? 'null'));
    } catch (error) {
      metrics.received.inc({ group: groupId, topic, event_type: UNPARSEABLE });
      // Parsing is deterministic: retrying cannot help.
      await deadLetter(topic, partition, message, errorMessage(error), error instanceof SyntaxError ? 'INVALID_JSON' : 'INVALID_EVENT');
      return null;
    }
    metrics.received.inc({ group: groupId, topic, event_type: event.eventType });
    log.info(
      {
        eventId: event.eventId,
        eventType: event.eventType,
        aggregateType: event.aggregateType,
        aggregateId: event.aggregateId,
        correlationId: event.correlationId,
        topic,
        partition,
        offset: message.offset,
      },
      'EVENT_RECEIVED',
    );
    return event;
  }

  /** Applies one event on its own, retrying; dead-letters it when it keeps failing. */
  async function applyOne(topic: string, partition: number, message: KafkaMessage, event: EventEnvelope): Promise<Outcome> {
    for (let attempt = 1; ; attempt++) {
      try {
        return (await apply([{ event, topic }])).has(event.eventId) ? 'applied' : 'duplicate';
      } catch (error) {
        if (isDatabaseUnavailable(error)) throw new DatabaseUnavailableError(`order_db unavailable: ${errorMessage(error)}`);
        if (attempt >= maxAttempts) {
          await deadLetter(topic, partition, message, `handler failed ${attempt} times: ${errorMessage(error)}`, 'HANDLER_FAILED', event);
          return 'dead_lettered';
        }
        log.warn({ eventId: event.eventId, attempt, err: errorMessage(error) }, 'applying event failed; retrying');
        await sleep(retryDelayMs * 2 ** (attempt - 1));
      }
    }
  }

  /**
   * Applies consecutive messages of one partition in one transaction. If that transaction fails for
   * a reason other than the database being away, one event spoils it: the messages are applied one
   * at a time, so only the bad one is retried and dead-lettered.
   */
  async function applyMessages(topic: string, partition: number, messages: KafkaMessage[]): Promise<{ eventType: string; outcome: Outcome }[]> {
    const events: (EventEnvelope | null)[] = [];
    for (const message of messages) events.push(await parseMessage(topic, partition, message));
    const consumed = events.flatMap((event) => (event ? [{ event, topic }] : []));
    let applied: Set<string> | undefined;
    try {
      applied = await apply(consumed);
    } catch (error) {
      if (isDatabaseUnavailable(error)) throw new DatabaseUnavailableError(`order_db unavailable: ${errorMessage(error)}`);
      log.warn({ topic, partition, messages: messages.length, err: errorMessage(error) }, 'applying a batch failed; applying its events one at a time');
    }
    const results: { eventType: string; outcome: Outcome }[] = [];
    for (const [i, event] of events.entries()) {
      if (!event) {
        results.push({ eventType: UNPARSEABLE, outcome: 'dead_lettered' });
      } else if (applied) {
        // The first of repeated deliveries within the batch was applied, the rest are duplicates.
        results.push({ eventType: event.eventType, outcome: applied.delete(event.eventId) ? 'applied' : 'duplicate' });
      } else {
        results.push({ eventType: event.eventType, outcome: await applyOne(topic, partition, messages[i]!, event) });
      }
    }
    return results;
  }

  try {
    await producer.connect();
    await consumer.connect();
    await consumer.subscribe({ topics: [...topics], fromBeginning });
  } catch (error) {
    await Promise.allSettled([consumer.disconnect(), producer.disconnect()]);
    throw error;
  }
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async (payload) => {
      const { batch } = payload;
      for (let start = 0; start < batch.messages.length; start += MAX_MESSAGES_PER_TRANSACTION) {
        if (!payload.isRunning() || payload.isStale()) return;
        const messages = batch.messages.slice(start, start + MAX_MESSAGES_PER_TRANSACTION);
        const startedAt = performance.now();
        const results = await applyMessages(batch.topic, batch.partition, messages);
        const last = messages[messages.length - 1]!;
        // The effects (and the dead letters) are durable: only now may the group move past them.
        await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: nextOffset(last.offset) }]);
        payload.resolveOffset(last.offset);
        const seconds = (performance.now() - startedAt) / 1000;
        for (const { eventType, outcome } of results) {
          metrics.processingDuration.observe({ group: groupId, event_type: eventType, outcome }, seconds);
          metrics.processed.inc({ group: groupId, event_type: eventType, outcome });
        }
        await payload.heartbeat();
      }
    },
  });
  log.info({ topics }, 'order event consumer started');
  return {
    consumer,
    stop: async () => {
      await consumer.disconnect();
      await producer.disconnect();
    },
  };
}

export const ORDER_CATALOGUE_GROUP = 'oms-order-catalogue';
export const ORDER_CATALOGUE_TOPICS = [TOPICS.productEvents] as const;

/**
 * The catalogue read model's consumer: PRODUCT_CREATED and PRODUCT_PRICE_CHANGED applied by
 * version (a redelivered or overtaken event changes nothing); the topic's stock events are not its
 * business and pass as duplicates.
 */
export function startCatalogueConsumer(options: Omit<OrderTimelineConsumerOptions, 'groupId' | 'topics' | 'apply'>): Promise<RunningConsumer> {
  return startOrderTimelineConsumer({
    ...options,
    groupId: ORDER_CATALOGUE_GROUP,
    topics: ORDER_CATALOGUE_TOPICS,
    apply: async (events) => {
      const applied = new Set<string>();
      // Each applied by version, on its own: a replayed or overtaken event changes nothing.
      for (const { event } of events) {
        if (isCatalogueEvent(event) && (await applyCatalogueEvent(options.db, event)) === 'applied') applied.add(event.eventId);
      }
      return applied;
    },
  });
}
