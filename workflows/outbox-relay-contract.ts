/**
 * The outbox relay contract: task queue, workflow ids, inputs and the status query shared by the
 * worker (which starts one relay workflow per service database), the workflow and operators.
 * Safe inside the workflow sandbox (it only defines things).
 */
import { defineQuery } from '@temporalio/workflow';

export const OUTBOX_TASK_QUEUE = 'oms-outbox';
/** Workflow type name of the relay loop (workflows/outbox-relay.ts), for starting it without importing its body. */
export const OUTBOX_RELAY_WORKFLOW_TYPE = 'outboxRelayWorkflow';

export type OutboxDatabaseName = 'order' | 'product' | 'payment';
export const OUTBOX_DATABASES: readonly OutboxDatabaseName[] = ['order', 'product', 'payment'];

/** One relay workflow per service database, with a fixed id: starting it again is a no-op. */
export const outboxRelayWorkflowId = (database: OutboxDatabaseName) => `outbox-relay-${database}_db`;

export interface RelayOutboxEventsInput {
  database: OutboxDatabaseName;
  /** The activity relays for this long, heartbeating, then returns so the workflow can purge and loop. */
  runForMs: number;
}

/** What one relay activity run did. */
export interface RelayRunSummary {
  published: number;
  deadLettered: number;
  retried: number;
  batches: number;
  /** Passes on which another relay held the database's publisher lock (this one was the standby). */
  standbyPasses: number;
}

export interface OutboxRelayTotals extends RelayRunSummary {
  runs: number;
  purged: number;
}

export interface OutboxRelayInput {
  database: OutboxDatabaseName;
  /** Default 4 minutes. */
  runForMs?: number;
  /** Default 30 s: a dead worker's relay moves to another worker this long after its last heartbeat. */
  heartbeatTimeoutMs?: number;
  /** Ceiling of Temporal's backoff between failed relay runs (Kafka down). Default 30 s. */
  retryMaxIntervalMs?: number;
  /** Runs before continue-as-new keeps the history small. Default 50. */
  runsBeforeContinueAsNew?: number;
  /** Carried across continue-as-new so the status query shows lifetime totals. */
  totals?: OutboxRelayTotals;
}

export const getOutboxRelayStatusQuery = defineQuery<OutboxRelayTotals>('getOutboxRelayStatus');
