/**
 * Replays one saga's recorded history against workflow code (by default what the worker runs:
 * workflows/ with its interceptors, bundled as workers/workflow-bundle.ts does), the check that a
 * fix or a deploy can resume the saga without a non-determinism error.
 *
 * When the whole history does not replay, the replay is repeated on growing prefixes of it, each
 * ending at a workflow task, to find the first workflow task whose recorded commands the code no
 * longer produces: those are the events where the code and the history diverge.
 */
import { resolve } from 'node:path';
import { Worker, type InjectedSinks, type ReplayWorkerOptions } from '@temporalio/worker';
// The default import: tsx loads @temporalio/proto as CommonJS, without named exports.
import proto, { type temporal } from '@temporalio/proto';
import { buildWorkflowBundle, workflowInterceptorModules } from '../../workers/workflow-bundle';
import type { SagaMetricsSinks } from '../../workflows/saga-metrics-contract';

type History = temporal.api.history.v1.IHistory;

/** One history event as a person reads it: id, type, and what it names (activity, child, timer). */
export interface EventSummary {
  eventId: number;
  eventType: string;
  detail: string | null;
}

export type ReplayOutcome =
  | { ok: true; events: number }
  | {
      ok: false;
      events: number;
      error: string;
      /** The workflow task whose recorded commands the code did not reproduce, and those commands. */
      divergence: { workflowTaskCompletedEventId: number; recordedCommands: EventSummary[] } | null;
    };

interface JsonEvent {
  eventId: string;
  eventType: string;
  [attributes: string]: unknown;
}

/**
 * History events with enum names (EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) rather than numbers, through
 * the proto classes themselves (the SDK's historyToJSON has its own protobufjs copy in this install).
 */
function readableEvents(history: History): JsonEvent[] {
  return (proto.temporal.api.history.v1.History.fromObject(history).toJSON() as { events: JsonEvent[] }).events;
}

function summarize(event: JsonEvent): EventSummary {
  const attributes = Object.entries(event).find(([key]) => key.endsWith('EventAttributes'))?.[1] as Record<string, { name?: string } | string | undefined> | undefined;
  const named = (key: string) => {
    const value = attributes?.[key];
    return typeof value === 'object' ? value?.name : value;
  };
  const timer = named('timerId');
  const detail = named('activityType') ?? named('workflowType') ?? (timer ? `timer ${timer}` : undefined) ?? named('signalName') ?? null;
  return { eventId: Number(event.eventId), eventType: event.eventType.replace(/^EVENT_TYPE_/, ''), detail: detail ?? null };
}

/** The metrics interceptor's sink, registered so the replay finds it; never called while replaying. */
export const idleSagaMetrics: InjectedSinks<SagaMetricsSinks> = {
  sagaMetrics: { started: { fn: () => undefined, callDuringReplay: false }, closed: { fn: () => undefined, callDuringReplay: false } },
};

/** @param workflowsPath another workflows index to replay against (a candidate build), relative to the working directory */
export async function replayHistory(history: History, workflowId: string, { workflowsPath }: { workflowsPath?: string } = {}): Promise<ReplayOutcome> {
  const options: ReplayWorkerOptions = {
    ...(workflowsPath
      ? { workflowsPath: resolve(workflowsPath), interceptors: { workflowModules: workflowInterceptorModules } }
      : { workflowBundle: await buildWorkflowBundle() }),
    sinks: idleSagaMetrics,
  };
  const events = history.events ?? [];
  try {
    await Worker.runReplayHistory(options, history, workflowId);
    return { ok: true, events: events.length };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { ok: false, events: events.length, error: message, divergence: await findDivergence(options, history, workflowId) };
  }
}

/**
 * Replays the prefixes ending at each WorkflowTaskStarted event: the commands of workflow task N
 * are checked when the replay reaches task N+1, so the first prefix that fails ends just after the
 * commands that diverged.
 */
async function findDivergence(options: ReplayWorkerOptions, history: History, workflowId: string): Promise<{ workflowTaskCompletedEventId: number; recordedCommands: EventSummary[] } | null> {
  const readable = readableEvents(history);
  const events = history.events ?? [];
  const ends = readable.flatMap((event, index) => (event.eventType === 'EVENT_TYPE_WORKFLOW_TASK_STARTED' && index > 0 ? [index] : []));
  ends.push(events.length - 1);
  async function* prefixes() {
    for (const end of ends) yield { workflowId: `${workflowId}@${end}`, history: { ...history, events: events.slice(0, end + 1) } };
  }
  for await (const result of Worker.runReplayHistories(options, prefixes())) {
    if (!result.error) continue;
    const end = Number(result.workflowId.slice(result.workflowId.lastIndexOf('@') + 1));
    // The last completed workflow task before this prefix's end, and the commands recorded after it.
    let completed = end;
    while (completed >= 0 && readable[completed]!.eventType !== 'EVENT_TYPE_WORKFLOW_TASK_COMPLETED') completed -= 1;
    if (completed < 0) return null;
    const recorded: EventSummary[] = [];
    for (let index = completed + 1; index < readable.length && readable[index]!.eventType !== 'EVENT_TYPE_WORKFLOW_TASK_SCHEDULED'; index += 1) {
      recorded.push(summarize(readable[index]!));
    }
    return { workflowTaskCompletedEventId: Number(readable[completed]!.eventId), recordedCommands: recorded };
  }
  return null;
}
