/**
 * Workflow interceptor module (bundled with workflows/, see workers/workflow-bundle.ts): reports
 * each saga's start and close to the worker through the saga metrics sink. It adds no command
 * and changes no result, so histories replay the same with or without it.
 */
import {
  proxySinks,
  TemporalFailure,
  workflowInfo,
  type Next,
  type WorkflowExecuteInput,
  type WorkflowInboundCallsInterceptor,
  type WorkflowInterceptorsFactory,
} from '@temporalio/workflow';
import { SEARCH_ATTRIBUTES, WORKFLOW_TYPES, type SagaState } from './order-contract';
import { SAGA_OUTCOME_BY_STATE, type SagaMetricsSinks, type SagaOutcome } from './saga-metrics-contract';

const SAGA_TYPES: ReadonlySet<string> = new Set(Object.values(WORKFLOW_TYPES));
const { sagaMetrics } = proxySinks<SagaMetricsSinks>();

/** The outcome from the SagaState the saga published last (its search attribute). */
function closingOutcome(): SagaOutcome {
  const state = workflowInfo().typedSearchAttributes.get(SEARCH_ATTRIBUTES.sagaState) as SagaState | undefined;
  return (state && SAGA_OUTCOME_BY_STATE[state]) ?? 'failed';
}

class SagaMetricsInterceptor implements WorkflowInboundCallsInterceptor {
  // Not async: in the sandbox every async function and await is one more promise with its stack
  // trace recorded (see runStep in saga.ts), and this wraps every saga.
  execute(input: WorkflowExecuteInput, next: Next<WorkflowInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    sagaMetrics.started();
    return next(input).then(
      (result) => {
        sagaMetrics.closed(closingOutcome());
        return result;
      },
      (error: unknown) => {
        // Only a TemporalFailure closes the workflow; any other error fails the workflow task, which
        // Temporal retries, so the saga has not ended.
        if (error instanceof TemporalFailure) sagaMetrics.closed(closingOutcome());
        throw error;
      },
    );
  }
}

export const interceptors: WorkflowInterceptorsFactory = () => (SAGA_TYPES.has(workflowInfo().workflowType) ? { inbound: [new SagaMetricsInterceptor()] } : {});
