/**
 * A compensation stack for workflow code. Each compensation is pushed BEFORE the step it undoes
 * (so a step that timed out after taking effect is still undone) and must be safe when that step
 * never happened. compensate() runs them newest first, in a non-cancellable scope (a cancelled saga
 * must still undo its work), keeps going when one fails, and records every outcome.
 */
import {
  CancellationScope,
  condition,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
  type LocalActivityOptions,
} from '@temporalio/workflow';
import type { OrderActivities } from '../activities/order';
import type { PaymentActivities } from '../activities/payment';
import type { SagaPolicyActivities } from '../activities/saga-policy';
import type { StockActivities } from '../activities/stock';
import { DEFAULT_SAGA_TIMEOUTS, retryCompensationSignal, SEARCH_ATTRIBUTES, WORKFLOW_PATCHES, type SagaProgress, type SagaState, type SagaTimeouts, type TccPaymentInput } from './order-contract';

interface Compensation {
  step: string;
  undo: () => Promise<unknown>;
}

export class Compensations {
  private readonly stack: Compensation[] = [];

  /** @param progress the saga's progress (visible by query): the running undo is its currentStep, outcomes go to compensations */
  constructor(private readonly progress: SagaProgress) {}

  /** Registers the undo of `step`; call it before running the step. */
  add(step: string, undo: () => Promise<unknown>): void {
    this.stack.push({ step, undo });
  }

  /**
   * Runs the stack, newest first. Resolves true when every compensation succeeded; the ones that
   * failed stay on the stack, in the same order, for the next call to run again.
   */
  async compensate(): Promise<boolean> {
    return CancellationScope.nonCancellable(async () => {
      const failed: Compensation[] = [];
      for (let next = this.stack.pop(); next !== undefined; next = this.stack.pop()) {
        // A compensation retrying against a participant that is down can last minutes: show which.
        this.progress.currentStep = next.step;
        try {
          await next.undo();
          this.progress.compensations.push({ step: next.step, outcome: 'COMPLETED' });
        } catch (error) {
          failed.push(next);
          const message = describeFailure(error);
          log.error('compensation failed; continuing with the rest', { step: next.step, error: message });
          this.progress.compensations.push({ step: next.step, outcome: 'FAILED', error: message });
        }
      }
      this.progress.currentStep = null;
      this.stack.push(...failed.reverse());
      return failed.length === 0;
    });
  }

  /**
   * Runs the compensations until every one has completed. A round that leaves some failed (each
   * already retried for its whole retry horizon) puts the saga in COMPENSATION_FAILED, reports it
   * through `onStuck` (the order is marked as needing attention), and waits as long as it takes for
   * an operator's retryCompensationSignal before running what is left again. Only signals sent
   * once the saga is stuck count. Cancelling the workflow ends the wait with a CancelledFailure:
   * whoever cancelled it (cancelOrder) undoes the same things, idempotently by order id.
   */
  async compensateUntilComplete(onStuck: () => Promise<unknown>): Promise<void> {
    let retryRequested = false;
    setHandler(retryCompensationSignal, () => {
      retryRequested = true;
    });
    while (!(await this.compensate())) {
      publishSagaState(this.progress, 'COMPENSATION_FAILED');
      // Marking the order is worth trying, not worth giving up the wait for: the saga's own state
      // (SagaState, the progress query) already says it is stuck.
      await CancellationScope.nonCancellable(onStuck).catch((error: unknown) =>
        log.error('could not mark the order as needing attention', { error: describeFailure(error) }),
      );
      retryRequested = false;
      log.warn('compensation failed past its retry horizon: waiting for an operator (./oms saga retry)', { pending: this.stack.map((c) => c.step) });
      await condition(() => retryRequested);
      publishSagaState(this.progress, 'COMPENSATING');
    }
  }
}

/**
 * The innermost cause of a Temporal failure, under the wrapping layers (ActivityFailure,
 * ChildWorkflowFailure) that say where it happened rather than what happened.
 */
function innermostCause(error: unknown): unknown {
  let current = error;
  while (current instanceof Error && current.cause instanceof Error && isWrapper(current)) current = current.cause;
  return current;
}

function isWrapper(error: Error): boolean {
  return error.name === 'ActivityFailure' || error.name === 'ChildWorkflowFailure';
}

/** "Type: message" of the innermost cause: what a person needs to know (InsufficientStock: ...). */
export function describeFailure(error: unknown): string {
  const cause = innermostCause(error);
  if (!(cause instanceof Error)) return String(cause);
  const type = failureType(cause);
  return type ? `${type}: ${cause.message}` : cause.message || cause.name;
}

/** The message of the innermost cause, without its type (for re-raising it under the same type). */
export function failureMessage(error: unknown): string {
  const cause = innermostCause(error);
  return cause instanceof Error ? cause.message || cause.name : String(cause);
}

/** The failure type of the innermost cause (an ApplicationFailure's type), or null. */
export function failureType(error: unknown): string | null {
  const type = (innermostCause(error) as { type?: unknown } | null)?.type;
  return typeof type === 'string' ? type : null;
}

/** The saga activities, as types only: workers register the real ones (workers/saga-worker.ts). */
export type SagaActivities = StockActivities & PaymentActivities & OrderActivities;

/**
 * Which shape a saga runs, decided once at its start and recorded in its history.
 *
 * `local` (every saga started since WORKFLOW_PATCHES.localActivities): its short, idempotent calls
 * (customer check, TCC try/confirm/cancel, capture, refund, order status transitions) are local
 * activities. They run inside the workflow task that scheduled them and are recorded as markers
 * when that task completes, so a whole TCC is one workflow task instead of a round trip to the
 * server per call. On worker loss the task times out and another worker replays the saga and
 * runs again every local activity whose marker was not recorded yet: each of those calls is safe
 * to repeat (the participants' barriers, the order's conditional transitions), which
 * test/workflows/worker-crash.test.ts proves. SagaState is upserted only when it changes, and the
 * timeouts come from the worker's configuration (the sagaTimeouts local activity) unless the input
 * carries its own.
 *
 * `remote`: the shape of sagas started before the patch, kept so that they replay.
 */
export type SagaShape = NonNullable<TccPaymentInput['shape']>;

/** The shape of a saga that decides its own (createOrder, cancelOrder); tccPayment follows its parent's. */
export function sagaShape(): SagaShape {
  return patched(WORKFLOW_PATCHES.localActivities) ? 'local' : 'remote';
}

const { sagaTimeouts: workerSagaTimeouts } = proxyLocalActivities<SagaPolicyActivities>({
  startToCloseTimeout: '5 seconds',
  retry: { initialInterval: '100 milliseconds', maximumAttempts: 10 },
});

/**
 * The timeouts a saga runs with: its input's own (tests, sagas of the old shape), else the worker's.
 * Not an async function, for the reason runStep gives.
 */
export function sagaTimeouts(shape: SagaShape, fromInput: SagaTimeouts | undefined): Promise<SagaTimeouts> {
  if (fromInput !== undefined || shape === 'remote') return Promise.resolve(fromInput ?? DEFAULT_SAGA_TIMEOUTS);
  return workerSagaTimeouts();
}

/**
 * Activity stubs for the sagas. Forward steps get a bounded retry (after it the saga compensates).
 * `undo` retries with capped backoff for the whole compensation retry horizon (hours by default),
 * because giving up on it leaves a hold or money behind (a normal activity in both shapes); `undoBounded` gives up after a number of
 * attempts, for tccPayment, whose parent undoes the same things again under the horizon.
 * Business declines are non-retryable ApplicationFailures and skip the retries entirely.
 * Local activities retry in the worker while the backoff is under a minute, then on a durable timer.
 */
export function sagaActivities(timeouts: SagaTimeouts, shape: SagaShape = 'remote') {
  const retry = {
    initialInterval: timeouts.initialRetryIntervalMs,
    maximumInterval: timeouts.maximumRetryIntervalMs,
    backoffCoefficient: 2,
  };
  const proxy = (options: ActivityOptions & LocalActivityOptions) =>
    shape === 'local' ? proxyLocalActivities<SagaActivities>(options) : proxyActivities<SagaActivities>(options);
  return {
    forward: proxy({
      startToCloseTimeout: timeouts.activityStartToCloseMs,
      retry: { ...retry, maximumAttempts: timeouts.maximumAttempts },
    }),
    // Always a normal activity: it retries for the whole compensation horizon (hours), a long step
    // that a local activity would hold inside one workflow task, heartbeating it all along.
    undo: proxyActivities<SagaActivities>({
      startToCloseTimeout: timeouts.activityStartToCloseMs,
      scheduleToCloseTimeout: timeouts.compensationRetryHorizonMs ?? DEFAULT_SAGA_TIMEOUTS.compensationRetryHorizonMs,
      retry,
    }),
    undoBounded: proxy({
      startToCloseTimeout: timeouts.activityStartToCloseMs,
      retry: { ...retry, maximumAttempts: timeouts.compensationMaximumAttempts },
    }),
  };
}

/**
 * Keeps the SagaState search attribute current, so `SagaState='COMPENSATING'` finds this saga.
 * The `local` shape upserts only a change (its starter already set RUNNING): each upsert is an
 * event and a visibility write.
 */
export function publishSagaState(progress: SagaProgress, state: SagaState, shape: SagaShape = 'remote'): void {
  progress.state = state;
  if (shape === 'local' && workflowInfo().typedSearchAttributes.get(SEARCH_ATTRIBUTES.sagaState) === state) return;
  upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.sagaState, value: state }]);
}

/** A fresh progress record, answered by getSagaProgressQuery from the workflow's first task. */
export function newSagaProgress(): SagaProgress {
  return { state: 'RUNNING', currentStep: null, completedSteps: [], compensations: [], failedStep: null, failureReason: null };
}

/**
 * Runs one forward step, keeping currentStep and completedSteps current for the progress query.
 * A step that throws is no longer current (the saga moves on to compensating); the first one to
 * fail is kept as failedStep, the step the saga gave up at.
 *
 * Not an async function, and neither should `run` be: the workflow sandbox records a stack trace
 * for every promise workflow code creates (for the Web UI's stack trace view), and with that hook
 * installed every async function and every await is a promise of its own. A step costs one promise
 * here (the activity's own aside); a step that checks the activity's answer does so in a `.then`.
 */
export function runStep<T>(progress: SagaProgress, step: string, run: () => Promise<T>): Promise<T> {
  progress.currentStep = step;
  let started: Promise<T>;
  try {
    started = run();
  } catch (error) {
    started = Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
  return started.then(
    (result) => {
      progress.currentStep = null;
      progress.completedSteps.push(step);
      return result;
    },
    (error: unknown) => {
      progress.currentStep = null;
      progress.failedStep ??= step;
      throw error;
    },
  );
}
