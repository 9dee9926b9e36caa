import { KafkaJSConnectionError, KafkaJSNonRetriableError, KafkaJSNumberOfRetriesExceeded, KafkaJSProtocolError } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { TOPICS } from '../../lib/kafka';
import {
  MAX_DEAD_LETTER_VALUE_BYTES,
  classifyPublishFailure,
  deadLetterHeaders,
  deadLetterValue,
  eventHeaders,
  headerString,
  publishFailureType,
  retryDelayMs,
  topicForEventType,
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
