import { KafkaJSConnectionError, KafkaJSNonRetriableError, KafkaJSNumberOfRetriesExceeded, KafkaJSProtocolError, Partitioners } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { TOPICS } from '../../lib/kafka';
import {
  MAX_DEAD_LETTER_VALUE_BYTES,
  classifyPublishFailure,
  createDeliveryCheck,
  deadLetterHeaders,
  deadLetterValue,
  eventHeaders,
  headerString,
  publishFailureType,
  retryDelayMs,
  topicForEventType,
  UnsentMessagesError,
} from '../../workers/outbox-relay/relay';

describe('topicForEventType (the event router)', () => {
  it.each([
    ['ORDER_CREATED', TOPICS.orderEvents],
    ['ORDER_CANCELLATION_REQUESTED', TOPICS.orderEvents],
    ['STOCK_RESERVED', TOPICS.productEvents],
    ['PAYMENT_REFUNDED', TOPICS.paymentEvents],
    ['SAGA_COMPENSATE', TOPICS.generalEvents],
    ['CUSTOMER_CREATED', TOPICS.generalEvents],
    ['PRODUCT_CREATED', TOPICS.productEvents],
    ['PRODUCT_PRICE_CHANGED', TOPICS.productEvents],
    ['ACCOUNT_OPENED', TOPICS.generalEvents],
    ['order_created', TOPICS.generalEvents],
  ])('%s goes to %s', (eventType, topic) => {
    expect(topicForEventType(eventType)).toBe(topic);
  });
});

describe('retryDelayMs', () => {
  it('doubles from the base after each failed attempt and stops at the ceiling', () => {
    expect([1, 2, 3, 4, 5].map((n) => retryDelayMs(n, 500, 60_000))).toEqual([500, 1000, 2000, 4000, 8000]);
    expect(retryDelayMs(20, 500, 60_000)).toBe(60_000);
    expect(retryDelayMs(10_000, 500, 60_000)).toBe(60_000);
  });
});

describe('classifyPublishFailure', () => {
  // kafkajs builds protocol errors from its error-code table entries; its typings only admit an Error.
  const protocolError = (type: string, retriable: boolean) => new KafkaJSProtocolError(Object.assign(new Error(type), { type, retriable }));
  const tooLarge = protocolError('MESSAGE_TOO_LARGE', false);
  const notLeader = protocolError('NOT_LEADER_FOR_PARTITION', true);
  // What kafkajs's retrier throws when it bails on a non-retriable error: the original as the cause.
  const bailed = Object.assign(new KafkaJSNonRetriableError(tooLarge), { cause: tooLarge });

  it('blames the event when the broker refused it for good, even wrapped by the retrier', () => {
    expect(classifyPublishFailure(tooLarge)).toBe('rejected');
    expect(classifyPublishFailure(bailed)).toBe('rejected');
    expect(publishFailureType(bailed)).toBe('MESSAGE_TOO_LARGE');
  });

  it('blames the broker for connection failures and exhausted retries of retriable errors', () => {
    expect(classifyPublishFailure(new KafkaJSConnectionError('Connection error: connect ECONNREFUSED'))).toBe('unavailable');
    expect(classifyPublishFailure(new KafkaJSNumberOfRetriesExceeded(notLeader, { retryCount: 5, retryTime: 100 }))).toBe('unavailable');
    expect(classifyPublishFailure(notLeader)).toBe('unavailable');
  });

  it('blames the event, not the broker, when its topic is missing or forbidden, even after kafkajs retried it', () => {
    const unknownTopic = protocolError('UNKNOWN_TOPIC_OR_PARTITION', true);
    expect(classifyPublishFailure(new KafkaJSNumberOfRetriesExceeded(unknownTopic, { retryCount: 5, retryTime: 100 }))).toBe('rejected');
    expect(classifyPublishFailure(protocolError('TOPIC_AUTHORIZATION_FAILED', false))).toBe('rejected');
    expect(publishFailureType(new KafkaJSNumberOfRetriesExceeded(unknownTopic, { retryCount: 5, retryTime: 100 }))).toBe('UNKNOWN_TOPIC_OR_PARTITION');
  });

  it('treats a non-Kafka error as the event failing (it counts toward the dead letter)', () => {
    expect(classifyPublishFailure(new TypeError('cannot serialize'))).toBe('rejected');
  });
});

describe('createDeliveryCheck (proof that a batch was sent)', () => {
  const partitionMetadata = [0, 1, 2, 3, 4, 5].map((partitionId) => ({ partitionId, leader: 1, partitionErrorCode: 0, replicas: [1], isr: [1] }));
  const answer = (topicName: string, partition: number, errorCode = 0) => ({ topicName, partition, errorCode });

  /** What kafkajs does with a batch: the partitioner chooses a partition for each message. */
  function partitioned(check: ReturnType<typeof createDeliveryCheck>, topic: string, keys: string[]) {
    const choose = check.createPartitioner();
    const messages = keys.map((key) => ({ key, value: `event of ${key}` }));
    return { topic, messages, partitions: messages.map((message) => choose({ topic, partitionMetadata, message })) };
  }

  it('partitions as the default partitioner does: an aggregate keeps its partition', () => {
    const check = createDeliveryCheck();
    const { partitions } = partitioned(check, TOPICS.orderEvents, ['order-a', 'order-b', 'order-a']);
    expect(partitions[0]).toBe(partitions[2]);
    const plain = Partitioners.DefaultPartitioner();
    expect(partitions[1]).toBe(plain({ topic: TOPICS.orderEvents, partitionMetadata, message: { key: 'order-b', value: '' } }));
  });

  it('counts every message sent when each partition it went to answered without error', () => {
    const check = createDeliveryCheck();
    const orders = partitioned(check, TOPICS.orderEvents, ['order-a', 'order-b']);
    const payments = partitioned(check, TOPICS.paymentEvents, ['payment-a']);
    const answers = [...orders.partitions.map((p) => answer(TOPICS.orderEvents, p)), answer(TOPICS.paymentEvents, payments.partitions[0]!)];
    expect(check.unsent([orders, payments], answers).size).toBe(0);
  });

  it('finds the messages of a partition that never answered: sendBatch resolved without sending them', () => {
    const check = createDeliveryCheck();
    const keys = Array.from({ length: 40 }, (_, i) => `order-${i}`);
    const orders = partitioned(check, TOPICS.orderEvents, keys);
    const lostPartition = orders.partitions[0]!;
    // Every partition but one answered, as when a dead leader's partitions moved to a broker that had answered already.
    const answers = [...new Set(orders.partitions)].filter((p) => p !== lostPartition).map((p) => answer(TOPICS.orderEvents, p));
    const unsent = check.unsent([orders], answers);
    expect([...unsent].map((m) => m.key)).toEqual(keys.filter((_, i) => orders.partitions[i] === lostPartition));
    expect(unsent.size).toBeGreaterThan(0);
    // The same partition number on another topic is no proof for this one.
    expect(check.unsent([orders], [...answers, answer(TOPICS.paymentEvents, lostPartition)])).toEqual(unsent);
    // Nor is an answer with an error.
    expect(check.unsent([orders], [...answers, answer(TOPICS.orderEvents, lostPartition, 6)])).toEqual(unsent);
  });

  it('counts a message the partitioner never saw as unsent, and the relay treats unsent messages as the broker failing, not the event', () => {
    const check = createDeliveryCheck();
    expect(check.unsent([{ topic: TOPICS.orderEvents, messages: [{ key: 'order-x', value: 'x' }] }], [answer(TOPICS.orderEvents, 0)]).size).toBe(1);
    expect(classifyPublishFailure(new UnsentMessagesError('2 of 5 not sent'))).toBe('unavailable');
  });
});

describe('headers and dead letters', () => {
  const row = {
    event_id: '6f2c1b8e-8d9a-4a53-9a34-0f5c8b1f0b11',
    event_type: 'ORDER_PAID',
    aggregate_type: 'ORDER',
    aggregate_id: 'order-1',
    correlation_id: null,
    created_at: new Date('2026-01-02T03:04:05.000Z'),
  };

  it('carries event id, type, aggregate type, correlation id and timestamp', () => {
    expect(eventHeaders(row)).toEqual({
      'event-id': row.event_id,
      'event-type': 'ORDER_PAID',
      'aggregate-type': 'ORDER',
      'correlation-id': '',
      timestamp: '2026-01-02T03:04:05.000Z',
    });
  });

  it('says why and where from, with a bounded reason', () => {
    const headers = deadLetterHeaders(
      { source: 'outbox-relay', reason: 'x'.repeat(5_000), errorType: 'MESSAGE_TOO_LARGE', originalTopic: TOPICS.orderEvents, sourceDb: 'order_db', retryCount: 5 },
      new Date('2026-01-01T00:00:00Z'),
    );
    expect(headers).toMatchObject({
      'dlq-error-type': 'MESSAGE_TOO_LARGE',
      'dlq-source': 'outbox-relay',
      'dlq-source-db': 'order_db',
      'dlq-original-topic': TOPICS.orderEvents,
      'dlq-retry-count': '5',
      'dlq-failed-at': '2026-01-01T00:00:00.000Z',
    });
    expect((headers['dlq-reason'] as string).length).toBe(1_000);
    expect(headerString({ a: Buffer.from('b') }, 'a')).toBe('b');
  });

  it('keeps the original value when it fits and a summary when it would not', () => {
    const small = Buffer.from('{"a":1}');
    expect(deadLetterValue(small, { eventId: 'e' })).toBe(small);
    const big = Buffer.alloc(MAX_DEAD_LETTER_VALUE_BYTES + 1, 'a');
    expect(JSON.parse(deadLetterValue(big, { eventId: 'e' }).toString())).toEqual({ eventId: 'e', payloadOmitted: true, payloadBytes: big.length });
  });
});
