/**
 * Tables that every service database has: the transactional outbox and idempotency records.
 * Participants (product, payment) also have TCC barriers; a database whose service consumes events
 * (order_db, for the timeline) also has the consumer inbox.
 */
import type { ColumnType, Generated, JSONColumnType } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;

export type OutboxStatus = 'PENDING' | 'PUBLISHED' | 'FAILED';

/** One domain event, written in the same transaction as the change it describes. */
export interface OutboxEventsTable {
  id: Generated<number>;
  /** Unique per event; consumers deduplicate by it. */
  event_id: string;
  aggregate_type: string;
  /** Kafka message key, so one aggregate's events stay in one partition, in order. */
  aggregate_id: string;
  event_type: string;
  /** The whole event envelope (lib/events.ts): exactly what the relay publishes. */
  payload: JSONColumnType<Record<string, unknown>>;
  correlation_id: string | null;
  created_at: Timestamp;
  published_at: NullableTimestamp;
  retry_count: Generated<number>;
  /** The relay does not try a failed row again before this time (backoff). */
  next_attempt_at: Timestamp;
  status: Generated<OutboxStatus>;
  error_message: string | null;
}

export type IdempotencyStatus = 'PROCESSING' | 'COMPLETED' | 'FAILED';

/** The stored outcome of a request made with an Idempotency-Key. */
export interface IdempotencyRecordsTable {
  idempotency_key: string;
  /** SHA-256 of method, route and body: the same key with another request is refused. */
  request_hash: string;
  request_method: string;
  request_path: string;
  status: Generated<IdempotencyStatus>;
  response_status: ColumnType<number | null, number | null | undefined, number | null>;
  /** JSON body of the stored response (objects and arrays). */
  response_data: ColumnType<Record<string, unknown> | unknown[] | null, string | null | undefined, string | null>;
  created_at: Timestamp;
  completed_at: NullableTimestamp;
  /** A PROCESSING record whose lock has passed belongs to a request that died; it may be retried. */
  locked_until: Timestamp;
  expires_at: Timestamp;
  error_message: ColumnType<string | null, string | null | undefined, string | null>;
}

/** Consumer inbox: an event id is recorded in the same transaction as its effect, so it applies once. */
export interface ProcessedEventsTable {
  consumer: string;
  event_id: string;
  event_type: string;
  processed_at: Timestamp;
}

/** The phases of a TCC transaction, spelled the same in barrier rows, metrics and code. */
export type TccPhase = 'try' | 'confirm' | 'cancel';

/**
 * TCC barrier (after dtm's branch barrier): one row per (transaction, branch, operation), written in
 * the same transaction as the business change. A cancel that finds no try row also writes the try
 * row, so a try arriving after its cancel is refused instead of hanging reserved.
 */
export interface TccBarriersTable {
  transaction_id: string;
  branch_id: string;
  operation: TccPhase;
  /** The operation that wrote this row: differs from `operation` for the row a cancel writes to block a late try. */
  reason: TccPhase;
  created_at: Timestamp;
}

export interface SharedTables {
  outbox_events: OutboxEventsTable;
  idempotency_records: IdempotencyRecordsTable;
}

/** The tables of a database whose service consumes events. */
export interface ConsumerTables {
  processed_events: ProcessedEventsTable;
}

export interface ParticipantTables extends SharedTables {
  tcc_barriers: TccBarriersTable;
}

export type { Timestamp, NullableTimestamp };
