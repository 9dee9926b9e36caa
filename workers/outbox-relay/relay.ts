/**
 * The pure decisions of the outbox relay and of dead-lettering: which topic an event goes to, what
 * headers it carries, how long a failed row waits, whether a Kafka error is the event's fault or
 * the broker's, and what a dead letter looks like. No I/O here, so all of it is unit-tested.
 */
import { Partitioners, type ICustomPartitioner, type IHeaders, type Message, type RecordMetadata, type TopicMessages } from 'kafkajs';
import { TOPICS, type TopicName } from '../../lib/kafka';

/** The event router: by event type prefix to its aggregate's topic, anything unknown to the general topic. */
export function topicForEventType(eventType: string): TopicName {
  if (eventType.startsWith('ORDER_')) return TOPICS.orderEvents;
  if (eventType.startsWith('STOCK_')) return TOPICS.productEvents;
  // The catalogue's events, with the stock ones: one topic keyed by product id orders a product's versions.
  if (eventType.startsWith('PRODUCT_')) return TOPICS.productEvents;
  if (eventType.startsWith('PAYMENT_')) return TOPICS.paymentEvents;
  return TOPICS.generalEvents;
}

/** The outbox row fields the relay publishes from. */
export interface RelayableEvent {
  event_id: string;
  event_type: string;
  aggregate_type: string;
  aggregate_id: string;
  correlation_id: string | null;
  created_at: Date;
}

/** Headers of every published event, so consumers can route and deduplicate without parsing the value. */
export function eventHeaders(event: RelayableEvent): IHeaders {
  return {
    'event-id': event.event_id,
    'event-type': event.event_type,
    'aggregate-type': event.aggregate_type,
    'correlation-id': event.correlation_id ?? '',
    timestamp: event.created_at.toISOString(),
  };
}

/**
 * Proof of delivery for a batch. kafkajs 2.2.4's sendBatch can resolve without having sent some of
 * its messages: when a partition leader dies mid-send, the retry maps that broker's partitions to
 * their new leaders but skips every new leader that already answered, in the first attempt, for
 * partitions of its own (kafkajs issue #1303; the production topology's broker-kill test lost two
 * events this way). So the relay learns each message's partition from the partitioner (the default
 * one, so partitioning is unchanged) and counts a message as sent only when its partition answered.
 */
export interface DeliveryCheck {
  /** For the producer's `createPartitioner`. */
  createPartitioner: ICustomPartitioner;
  /** The messages of `batch` whose partition has no error-free answer in `answers`. */
  unsent(batch: readonly TopicMessages[], answers: readonly RecordMetadata[]): Set<Message>;
}

export function createDeliveryCheck(): DeliveryCheck {
  // The partitioner sees the very message objects passed to sendBatch, once per attempt, with the
  // topic the producer really writes to; the last attempt's choice counts.
  const destinationOf = new WeakMap<Message, string>();
  const destination = (topic: string, partition: number) => `${topic}\u0000${partition}`;
  return {
    createPartitioner() {
      const choose = Partitioners.DefaultPartitioner();
      return (args) => {
        const partition = choose(args);
        destinationOf.set(args.message, destination(args.topic, partition));
        return partition;
      };
    },
    unsent(batch, answers) {
      const answered = new Set(answers.filter((a) => a.errorCode === 0).map((a) => destination(a.topicName, a.partition)));
      const unsent = new Set<Message>();
      for (const { messages } of batch) {
        for (const message of messages) {
          const sentTo = destinationOf.get(message);
          if (sentTo === undefined || !answered.has(sentTo)) unsent.add(message);
        }
      }
      return unsent;
    },
  };
}

/** Raised for the rows of a batch that sendBatch resolved without sending (see DeliveryCheck): the broker's side, not the event's. */
export class UnsentMessagesError extends Error {
  override name = 'UnsentMessagesError';
}

/** Exponential backoff after the n-th failed attempt (n >= 1): base, 2*base, 4*base ... capped. */
export function retryDelayMs(failedAttempts: number, baseMs: number, maxMs: number): number {
  const exponent = Math.min(Math.max(failedAttempts - 1, 0), 30);
  return Math.min(baseMs * 2 ** exponent, maxMs);
}

/**
 * `rejected`: the broker answered and refused this event (MESSAGE_TOO_LARGE, INVALID_RECORD ...), its
 * topic does not exist or may not be written to, or our own code failed on it: retrying the same bytes will not help, so it counts toward dead-lettering.
 * `unavailable`: the broker could not be reached or asked us to retry (connection refused, timeouts,
 * leader elections): the event is fine, and it must stay PENDING however long the outage lasts.
 */
export type PublishFailureKind = 'rejected' | 'unavailable';

interface KafkaLikeError {
  name?: unknown;
  retriable?: unknown;
  type?: unknown;
  cause?: unknown;
  originalError?: unknown;
}

function causes(error: unknown): KafkaLikeError[] {
  const chain: KafkaLikeError[] = [];
  let current: unknown = error;
  while (current && typeof current === 'object' && chain.length < 10) {
    const candidate = current as KafkaLikeError;
    chain.push(candidate);
    current = candidate.cause ?? candidate.originalError;
  }
  return chain;
}

/**
 * Errors about where the event goes, not about the broker's health: kafkajs retries an unknown
 * topic (its metadata might be stale), but when the retries run out the topic is simply missing, or
 * we may not write to it. Waiting for the broker would block the aggregate's events forever.
 */
const DESTINATION_ERRORS = new Set(['UNKNOWN_TOPIC_OR_PARTITION', 'TOPIC_AUTHORIZATION_FAILED', 'INVALID_TOPIC_EXCEPTION']);

export function classifyPublishFailure(error: unknown): PublishFailureKind {
  const chain = causes(error);
  if (chain.some((e) => e.name === 'UnsentMessagesError')) return 'unavailable';
  // A protocol error the broker marks non-retriable is about this request's content.
  if (chain.some((e) => e.name === 'KafkaJSProtocolError' && e.retriable === false)) return 'rejected';
  if (chain.some((e) => typeof e.type === 'string' && DESTINATION_ERRORS.has(e.type))) return 'rejected';
  if (chain.some((e) => typeof e.name === 'string' && e.name.startsWith('KafkaJS'))) return 'unavailable';
  return 'rejected';
}

/** The Kafka error code name (MESSAGE_TOO_LARGE ...) or error class, for the dead letter's headers. */
export function publishFailureType(error: unknown): string {
  for (const e of causes(error)) if (typeof e.type === 'string') return e.type;
  const [first] = causes(error);
  return typeof first?.name === 'string' ? first.name : 'Error';
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Header values are bounded: a dead letter must itself be publishable. */
const MAX_HEADER_CHARS = 1_000;
/** Broker default message.max.bytes is ~1 MiB; a dead letter's value stays well under it. */
export const MAX_DEAD_LETTER_VALUE_BYTES = 512 * 1024;

export interface DeadLetterSource {
  /** `outbox-relay` or `consumer:<group>`. */
  source: string;
  reason: string;
  errorType: string;
  originalTopic: string;
  sourceDb?: string;
  originalPartition?: number;
  originalOffset?: string;
  retryCount?: number;
  eventId?: string;
  eventType?: string;
  correlationId?: string | null;
}

export function deadLetterHeaders(dead: DeadLetterSource, now: Date): IHeaders {
  const headers: IHeaders = {
    'dlq-reason': dead.reason.slice(0, MAX_HEADER_CHARS),
    'dlq-error-type': dead.errorType,
    'dlq-source': dead.source,
    'dlq-original-topic': dead.originalTopic,
    'dlq-failed-at': now.toISOString(),
  };
  if (dead.sourceDb !== undefined) headers['dlq-source-db'] = dead.sourceDb;
  if (dead.originalPartition !== undefined) headers['dlq-original-partition'] = String(dead.originalPartition);
  if (dead.originalOffset !== undefined) headers['dlq-original-offset'] = dead.originalOffset;
  if (dead.retryCount !== undefined) headers['dlq-retry-count'] = String(dead.retryCount);
  if (dead.eventId !== undefined) headers['event-id'] = dead.eventId;
  if (dead.eventType !== undefined) headers['event-type'] = dead.eventType;
  if (dead.correlationId) headers['correlation-id'] = dead.correlationId;
  return headers;
}

/**
 * The value of a dead letter: the original bytes when they fit, otherwise a summary naming the
 * event (the full event stays in the FAILED outbox row, which cleanup never deletes).
 */
export function deadLetterValue(original: Buffer, summary: Record<string, unknown>): Buffer {
  if (original.length <= MAX_DEAD_LETTER_VALUE_BYTES) return original;
  return Buffer.from(JSON.stringify({ ...summary, payloadOmitted: true, payloadBytes: original.length }));
}

/** Header value as a string (kafkajs delivers Buffers), or undefined. */
export function headerString(headers: IHeaders | undefined, name: string): string | undefined {
  const value = headers?.[name];
  if (value === undefined || value === null) return undefined;
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined ? undefined : Buffer.isBuffer(first) ? first.toString('utf8') : String(first);
}

/** Marks an operator's record on the dead letter topic (a republish), which is not itself a dead letter. */
export const DEAD_LETTER_RECORD_HEADER = 'dlq-record';

/** A message read back from the dead letter topic. */
export interface DeadLetter {
  partition: number;
  offset: string;
  key: string | null;
  value: Buffer;
  /** Every header, as strings: the original event's and the dlq-* ones. */
  headers: Record<string, string>;
  source: string | null;
  reason: string | null;
  errorType: string | null;
  originalTopic: string | null;
  eventId: string | null;
  eventType: string | null;
  failedAt: string | null;
}

/** Header values as strings (kafkajs delivers Buffers, possibly several per name: the first counts). */
export function headerStrings(headers: IHeaders | undefined): Record<string, string> {
  const strings: Record<string, string> = {};
  for (const name of Object.keys(headers ?? {})) {
    const value = headerString(headers, name);
    if (value !== undefined) strings[name] = value;
  }
  return strings;
}

export function parseDeadLetter(partition: number, message: { offset: string; key: Buffer | null; value: Buffer | null; headers?: IHeaders }): DeadLetter {
  const headers = headerStrings(message.headers);
  return {
    partition,
    offset: message.offset,
    key: message.key?.toString('utf8') ?? null,
    value: message.value ?? Buffer.alloc(0),
    headers,
    source: headers['dlq-source'] ?? null,
    reason: headers['dlq-reason'] ?? null,
    errorType: headers['dlq-error-type'] ?? null,
    originalTopic: headers['dlq-original-topic'] ?? null,
    eventId: headers['event-id'] ?? null,
    eventType: headers['event-type'] ?? null,
    failedAt: headers['dlq-failed-at'] ?? null,
  };
}

/**
 * What a republished dead letter carries: its original headers (event id, type, correlation id),
 * without the dlq-* ones, plus where it was republished from. The event id is unchanged, so
 * consumers' inboxes still deduplicate it.
 */
export function republishHeaders(dead: DeadLetter, deadLetterTopic: string): Record<string, string> {
  const headers = Object.fromEntries(Object.entries(dead.headers).filter(([name]) => !name.startsWith('dlq-')));
  return { ...headers, 'republished-from': `${deadLetterTopic}:${dead.partition}:${dead.offset}` };
}

/** Why a dead letter cannot be republished as it is, or null when it can. */
export function republishRefusal(dead: DeadLetter): string | null {
  if (dead.headers[DEAD_LETTER_RECORD_HEADER] !== undefined) return 'this is a republish record, not a dead letter';
  if (!dead.originalTopic) return 'it names no original topic (no dlq-original-topic header)';
  try {
    const value = JSON.parse(dead.value.toString('utf8')) as { payloadOmitted?: unknown };
    if (value?.payloadOmitted === true) return 'its value is a summary (the event was too large); requeue the outbox row instead: ./oms outbox requeue';
  } catch {
    // Not JSON: republished as the bytes it was (a consumer dead-lettered it as INVALID_JSON).
  }
  return null;
}
