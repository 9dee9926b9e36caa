/**
 * Workflow interceptor module (bundled with workflows/, see workers/workflow-bundle.ts): carries the
 * saga's correlation id from its memo to everything it starts. Each activity and local activity
 * gets it as a header (workers/correlation.ts makes it the activity's current correlation id, so
 * its events and its calls to the participants carry it); each child workflow gets it in its memo.
 * It also adds it to the workflow's log lines.
 *
 * Headers and memos are not compared on replay, so histories recorded before this module existed
 * replay the same with it.
 */
import {
  defaultPayloadConverter,
  workflowInfo,
  type ActivityInput,
  type GetLogAttributesInput,
  type LocalActivityInput,
  type Next,
  type StartChildWorkflowExecutionInput,
  type WorkflowInterceptorsFactory,
  type WorkflowOutboundCallsInterceptor,
} from '@temporalio/workflow';
import { CORRELATION_ID_HEADER, CORRELATION_ID_MEMO } from './order-contract';

function correlationId(): string | undefined {
  const value = workflowInfo().memo?.[CORRELATION_ID_MEMO];
  return typeof value === 'string' ? value : undefined;
}

function withHeader<T extends ActivityInput | LocalActivityInput>(input: T): T {
  const id = correlationId();
  return id ? { ...input, headers: { ...input.headers, [CORRELATION_ID_HEADER]: defaultPayloadConverter.toPayload(id) } } : input;
}

class CorrelationInterceptor implements WorkflowOutboundCallsInterceptor {
  scheduleActivity(input: ActivityInput, next: Next<WorkflowOutboundCallsInterceptor, 'scheduleActivity'>) {
    return next(withHeader(input));
  }

  scheduleLocalActivity(input: LocalActivityInput, next: Next<WorkflowOutboundCallsInterceptor, 'scheduleLocalActivity'>) {
    return next(withHeader(input));
  }

  startChildWorkflowExecution(input: StartChildWorkflowExecutionInput, next: Next<WorkflowOutboundCallsInterceptor, 'startChildWorkflowExecution'>) {
    const id = correlationId();
    if (!id) return next(input);
    return next({ ...input, options: { ...input.options, memo: { ...input.options.memo, [CORRELATION_ID_MEMO]: id } } });
  }

  getLogAttributes(input: GetLogAttributesInput, next: Next<WorkflowOutboundCallsInterceptor, 'getLogAttributes'>) {
    const id = correlationId();
    return next(id ? { ...input, correlationId: id } : input);
  }
}

export const interceptors: WorkflowInterceptorsFactory = () => ({ outbound: [new CorrelationInterceptor()] });
