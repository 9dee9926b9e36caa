/**
 * outboxRelayWorkflow: supervises the outbox relay of one service database. Each iteration runs the
 * long-running, heartbeating relay activity for a bounded time, then purges old PUBLISHED rows.
 * If the relay's worker dies, its heartbeats stop and Temporal retries the activity on another
 * worker; if Kafka is down, the activity fails and is retried with backoff. Never completes.
 */
import { continueAsNew, log, proxyActivities, setHandler } from '@temporalio/workflow';
import type { OutboxRelayActivities } from '../workers/outbox-relay/activities';
import { getOutboxRelayStatusQuery, type OutboxRelayInput, type OutboxRelayTotals } from './outbox-relay-contract';

const DEFAULT_RUN_FOR_MS = 4 * 60_000;
const DEFAULT_HEARTBEAT_TIMEOUT_MS = 30_000;
const DEFAULT_RETRY_MAX_INTERVAL_MS = 30_000;
const DEFAULT_RUNS_BEFORE_CONTINUE_AS_NEW = 50;

export async function outboxRelayWorkflow(input: OutboxRelayInput): Promise<never> {
  const runForMs = input.runForMs ?? DEFAULT_RUN_FOR_MS;
  const { relayOutboxEvents } = proxyActivities<OutboxRelayActivities>({
    // The run returns after runForMs; the margin covers the batch in flight when time is up.
    startToCloseTimeout: runForMs + 2 * 60_000,
    heartbeatTimeout: input.heartbeatTimeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS,
    // No attempt limit: a relay that gives up would leave events unpublished until someone noticed.
    retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: input.retryMaxIntervalMs ?? DEFAULT_RETRY_MAX_INTERVAL_MS },
  });
  // The purge is a few bounded DELETEs: no heartbeats, so its deadline is how long the relay of this
  // database stands still when the worker running the purge dies (the fault suite kills it there).
  const { purgePublishedOutboxEvents } = proxyActivities<OutboxRelayActivities>({
    startToCloseTimeout: '1 minute',
    retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 },
  });

  const totals: OutboxRelayTotals = input.totals ?? { runs: 0, published: 0, deadLettered: 0, retried: 0, batches: 0, standbyPasses: 0, purged: 0 };
  setHandler(getOutboxRelayStatusQuery, () => totals);

  const runs = input.runsBeforeContinueAsNew ?? DEFAULT_RUNS_BEFORE_CONTINUE_AS_NEW;
  for (let run = 0; run < runs; run++) {
    const summary = await relayOutboxEvents({ database: input.database, runForMs });
    totals.runs += 1;
    totals.published += summary.published;
    totals.deadLettered += summary.deadLettered;
    totals.retried += summary.retried;
    totals.batches += summary.batches;
    totals.standbyPasses += summary.standbyPasses;
    try {
      totals.purged += await purgePublishedOutboxEvents({ database: input.database });
    } catch (error) {
      // A failed purge only delays cleanup to the next run; it must not stop the relay.
      log.warn('outbox purge failed; retrying after the next relay run', { database: input.database, error: String(error) });
    }
  }
  return continueAsNew<typeof outboxRelayWorkflow>({ ...input, totals });
}
