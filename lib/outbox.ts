/**
 * The write side of the transactional outbox: a domain event is inserted in the caller's
 * transaction, so it exists exactly when the change it describes was committed.
 */
import { randomUUID } from 'node:crypto';
import type { Insertable, Transaction } from 'kysely';
import type { OutboxEventsTable, SharedTables } from './shared-tables';
import { currentCorrelationId } from './correlation';
import { EVENT_DEFINITIONS, type EventEnvelope, type EventPayload, type EventType } from './events';

export const EVENT_SCHEMA_VERSION = 1;

export interface NewDomainEvent<T extends EventType> {
  eventType: T;
  aggregateId: string;
  payload: EventPayload<T>;
  /**
   * For work that no request or saga started (a sweeper): what ties this event to others, usually
   * the order id. Inside a request or a saga its correlation id is used instead
   * (lib/correlation.ts), so one id follows an order through every service.
   */
  correlationId?: string | null;
}

/** The outbox row of an event: the envelope the relay publishes, and the columns it is stored in. */
export function outboxEventRow<T extends EventType>(event: NewDomainEvent<T>): { envelope: EventEnvelope; row: Insertable<OutboxEventsTable> } {
  const definition = EVENT_DEFINITIONS[event.eventType];
  const payload = definition.payload.parse(event.payload) as Record<string, unknown>;
  const envelope: EventEnvelope = {
    eventId: randomUUID(),
    eventType: event.eventType,
    aggregateType: definition.aggregateType,
    aggregateId: event.aggregateId,
    timestamp: new Date().toISOString(),
    version: EVENT_SCHEMA_VERSION,
    correlationId: currentCorrelationId() ?? event.correlationId ?? null,
    payload,
  };
  const row = {
    event_id: envelope.eventId,
    aggregate_type: envelope.aggregateType,
    aggregate_id: envelope.aggregateId,
    event_type: envelope.eventType,
    payload: JSON.stringify(envelope),
    correlation_id: envelope.correlationId,
    created_at: envelope.timestamp,
    next_attempt_at: envelope.timestamp,
  };
  return { envelope, row };
}

/**
 * Validates the payload against its event type's schema and writes the event to the outbox.
 * Takes a Transaction, not a Kysely: an event written outside the business change's
 * transaction would defeat the pattern. (A single statement that writes the change and its event
 * together, as placing an order does, inserts outboxEventRow's row itself.)
 */
export async function appendOutboxEvent<DB extends SharedTables, T extends EventType>(
  trx: Transaction<DB>,
  event: NewDomainEvent<T>,
): Promise<EventEnvelope> {
  const { envelope, row } = outboxEventRow(event);
  // Kysely cannot narrow a generic DB to its shared tables; the cast is to the tables every DB has.
  await (trx as unknown as Transaction<SharedTables>).insertInto('outbox_events').values(row).execute();
  return envelope;
}
