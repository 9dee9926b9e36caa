/**
 * Reads what reached Kafka during a test. The topics are shared by every suite and by `./oms up`,
 * so a probe joins its own new consumer group positioned at the current end of each topic (no
 * history, no race with the first fetch) and keeps only the messages the test asks about.
 */
import { randomUUID } from 'node:crypto';
import type { Kafka, Producer, ProducerBatch, ProducerConfig, ProducerRecord } from 'kafkajs';
import type { EventEnvelope } from '../../lib/events';
import { createTopicsWithLeaders, TOPICS } from '../../lib/kafka';
import { eventHeaders, topicForEventType } from '../../workers/outbox-relay/relay';

export interface ProbedMessage {
  topic: string;
  partition: number;
  offset: string;
  key: string | null;
  value: string;
  headers: Record<string, string>;
}

export interface KafkaProbe {
  messages: ProbedMessage[];
  waitFor: (predicate: (messages: ProbedMessage[]) => boolean, timeoutMs?: number) => Promise<ProbedMessage[]>;
  stop: () => Promise<void>;
}

export async function positionGroupAtEnd(kafka: Kafka, groupId: string, topics: readonly string[]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    for (const topic of topics) {
      const offsets = await admin.fetchTopicOffsets(topic);
      await admin.setOffsets({ groupId, topic, partitions: offsets.map(({ partition, high }) => ({ partition, offset: high })) });
    }
  } finally {
    await admin.disconnect();
  }
}

/**
 * `groupId`: a group already positioned with positionGroupAtEnd (a probe that must see what was
 * sent while it could not yet connect); by default a new group positioned now.
 */
export async function startKafkaProbe(
  kafka: Kafka,
  topics: readonly string[],
  keep: (message: ProbedMessage) => boolean,
  { groupId }: { groupId?: string } = {},
): Promise<KafkaProbe> {
  if (!groupId) {
    groupId = `test-probe-${randomUUID()}`;
    await positionGroupAtEnd(kafka, groupId, topics);
  }
  const consumer = kafka.consumer({ groupId, allowAutoTopicCreation: false });
  const messages: ProbedMessage[] = [];
  await consumer.connect();
  await consumer.subscribe({ topics: [...topics] });
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(message.headers ?? {})) {
        if (value !== undefined) headers[name] = (Array.isArray(value) ? value[0] : value)?.toString() ?? '';
      }
      const probed = { topic, partition, offset: message.offset, key: message.key?.toString() ?? null, value: message.value?.toString() ?? '', headers };
      if (keep(probed)) messages.push(probed);
    },
  });
  return {
    messages,
    waitFor: (predicate, timeoutMs = 30_000) => eventually(() => (predicate(messages) ? messages : undefined), timeoutMs, 'Kafka messages'),
    stop: () => consumer.disconnect(),
  };
}

/** Polls `check` until it returns a value (not undefined), or fails after `timeoutMs` naming `what`. */
export async function eventually<T>(check: () => T | undefined | Promise<T | undefined>, timeoutMs: number, what: string, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Sends an event as the outbox relay does: to its routed topic, keyed by its aggregate, with the
 * event headers. `value` replaces the body (a test's malformed message); `topic` replaces the routed
 * topic (a test's own copy of it, which the stack's consumers do not read).
 */
export async function deliverAsRelay(producer: Producer, event: EventEnvelope, value: string = JSON.stringify(event), topic: string = topicForEventType(event.eventType)): Promise<void> {
  await producer.send({
    topic,
    acks: -1,
    messages: [
      {
        key: event.aggregateId,
        value,
        headers: eventHeaders({
          event_id: event.eventId,
          event_type: event.eventType,
          aggregate_type: event.aggregateType,
          aggregate_id: event.aggregateId,
          correlation_id: event.correlationId,
          created_at: new Date(event.timestamp),
        }),
      },
    ],
  });
}

/** A suite's own copies of the OMS topics, named after the suite. */
export interface OwnTopics {
  orderEvents: string;
  productEvents: string;
  paymentEvents: string;
  generalEvents: string;
  deadLetters: string;
  /** The three event topics, in the timeline consumer's order. */
  events: string[];
  /** The suite's topic for an event type: its routed topic's own copy. */
  topicFor: (eventType: string) => string;
  /** The suite's copy of an OMS topic; throws for any other topic. */
  copyOf: (topic: string) => string;
  drop: () => Promise<void>;
}

/**
 * Creates topics of the suite's own, so malformed or test-only messages never reach the consumers
 * of the stack a developer is running; drop() deletes them.
 */
export async function createOwnTopics(kafka: Kafka, suite: string): Promise<OwnTopics> {
  const prefix = `test.${suite}.${randomUUID()}`;
  const own = {
    orderEvents: `${prefix}.orders`,
    productEvents: `${prefix}.products`,
    paymentEvents: `${prefix}.payments`,
    generalEvents: `${prefix}.general`,
    deadLetters: `${prefix}.dlq`,
  };
  const copies: Record<string, string> = {
    [TOPICS.orderEvents]: own.orderEvents,
    [TOPICS.productEvents]: own.productEvents,
    [TOPICS.paymentEvents]: own.paymentEvents,
    [TOPICS.generalEvents]: own.generalEvents,
    [TOPICS.deadLetters]: own.deadLetters,
  };
  const copyOf = (topic: string) => {
    const copy = copies[topic];
    if (!copy) throw new Error(`${topic} is not an OMS topic this suite has a copy of`);
    return copy;
  };
  const all = Object.values(own);
  const admin = kafka.admin();
  await admin.connect();
  try {
    await createTopicsWithLeaders(admin, all.map((topic) => ({ topic, numPartitions: topic === own.deadLetters ? 1 : 3 })));
  } finally {
    await admin.disconnect();
  }
  return {
    ...own,
    events: [own.orderEvents, own.productEvents, own.paymentEvents],
    topicFor: (eventType) => copyOf(topicForEventType(eventType)),
    copyOf,
    drop: async () => {
      const dropper = kafka.admin();
      await dropper.connect();
      try {
        await dropper.deleteTopics({ topics: all });
      } finally {
        await dropper.disconnect();
      }
    },
  };
}

/**
 * `kafka`, except that every producer it makes sends to the suite's own copy of the OMS topic it
 * names: code that publishes to the OMS topics by name (the outbox relay, dead letters included)
 * runs unchanged, and the consumers of the stack a developer is running never see what it sends.
 */
export function producingToOwnTopics(kafka: Kafka, own: OwnTopics): Kafka {
  const producer = (config?: ProducerConfig): Producer => {
    const real = kafka.producer(config);
    return {
      ...real,
      send: (record: ProducerRecord) => real.send({ ...record, topic: own.copyOf(record.topic) }),
      sendBatch: (batch: ProducerBatch) => real.sendBatch({ ...batch, topicMessages: batch.topicMessages?.map((sent) => ({ ...sent, topic: own.copyOf(sent.topic) })) }),
      transaction: () => Promise.reject(new Error('producingToOwnTopics does not copy transactions')),
    };
  };
  return new Proxy(kafka, {
    get: (target, property) => {
      if (property === 'producer') return producer;
      const value: unknown = Reflect.get(target, property);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
