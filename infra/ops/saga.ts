/**
 * Operator commands for the order sagas (`./oms saga ...`):
 *
 *   list [--state STATE] [--customer ID] [--limit N]   sagas by SagaState / customer (visibility query)
 *   describe ORDER_ID                                  createOrder, tccPayment and cancelOrder of an
 *                                                      order: status, progress query, Web UI links
 *   reset WORKFLOW_ID [--to first|last] [--reason R]   `temporal workflow reset` of one saga, after
 *                                                      printing what it will do (--yes to run it)
 *   stuck [--older-than 5m] [--state STATE]            open sagas started longer ago than that, by
 *                                                      SagaState, with what each is waiting on
 *   replay WORKFLOW_ID [--run-id ID] [--workflows PATH]
 *                                                      replays the saga's history against the current
 *                                                      workflow code (or a candidate's): OK, or the
 *                                                      non-determinism and the events where it diverged
 *   retry ORDER_ID                                     a saga in COMPENSATION_FAILED runs its undo
 *                                                      again: createOrder gets retryCompensation,
 *                                                      a failed cancelOrder is started again
 *
 * COMPENSATION_FAILED: an undo (release stock, refund money) kept failing past its retry horizon,
 * typically because a participant was down for hours. The order says so (status
 * COMPENSATION_FAILED, or CANCELLING for a cancel) and may still hold stock or money. Fix the cause,
 * then `retry`: createOrder is still open and waiting for exactly this signal.
 *
 * Before resetting or redeploying for a stuck saga, `replay` tells whether the code about to run
 * can resume its history.
 *
 * When to reset: a saga that gave up on a transient fault (SagaState FAILED: a compensation or a
 * cancellation step ran out of retries while a participant was down). Every saga step is
 * idempotent by order id (conditional order transitions, TCC barriers, one refund per order),
 * so re-running from the first workflow task repeats nothing that already took effect: `--to
 * first` is the safe default. `--to last` only retries the last workflow task (a bug fixed by a
 * deploy). A declined order (COMPENSATED, FAILED order with a business reason) needs no reset.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection, WorkflowIdReusePolicy, WorkflowNotFoundError, type WorkflowExecutionInfo } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { loadConfig } from '../../lib/config';
import { temporalConnectionOptions } from '../../lib/temporal-connection';
import {
  cancelOrderWorkflowId,
  createOrderWorkflowId,
  getSagaProgressQuery,
  retryCompensationSignal,
  SAGA_STATES,
  SEARCH_ATTRIBUTES,
  tccPaymentWorkflowId,
  WORKFLOW_TYPES,
  type CancelOrderInput,
  type SagaState,
} from '../../workflows/order-contract';
import { replayHistory } from './saga-replay';

const USAGE = `usage:
  ./oms saga list [--state ${SAGA_STATES.join('|')}] [--customer ID] [--limit N]
  ./oms saga describe ORDER_ID
  ./oms saga reset WORKFLOW_ID [--to first|last] [--reason TEXT] [--yes]
  ./oms saga retry ORDER_ID
  ./oms saga stuck [--older-than DURATION (e.g. 90s, 5m, 2h; default 5m)] [--state STATE]
  ./oms saga replay WORKFLOW_ID [--run-id RUN_ID] [--workflows PATH_TO_WORKFLOWS_INDEX]`;

class UsageError extends Error {}

/** Visibility query for `list`; values are quoted as Temporal's SQL-like syntax expects. */
function sagaListQuery({ state, customerId }: { state?: string; customerId?: string }): string {
  const clauses = [`WorkflowType IN (${Object.values(WORKFLOW_TYPES).map((type) => `'${type}'`).join(', ')})`];
  if (state !== undefined) {
    if (!SAGA_STATES.includes(state as SagaState)) throw new UsageError(`--state must be one of ${SAGA_STATES.join(', ')}`);
    clauses.push(`${SEARCH_ATTRIBUTES.sagaState.name}='${state}'`);
  }
  if (customerId !== undefined) clauses.push(`${SEARCH_ATTRIBUTES.customerId.name}='${customerId.replace(/'/g, "''")}'`);
  return clauses.join(' AND ');
}

/** "90s", "5m", "2h", "1d" in milliseconds. */
export function parseAge(text: string): number {
  const match = /^(\d+)(s|m|h|d)$/.exec(text);
  if (!match) throw new UsageError(`--older-than must look like 90s, 5m, 2h or 1d, got '${text}'`);
  return Number(match[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 's' | 'm' | 'h' | 'd'];
}

function temporalCli(): string {
  const tools = process.env.OMS_TOOLS_DIR ?? join(homedir(), '.cache', 'oms');
  const bundled = join(tools, 'bin', 'temporal');
  return existsSync(bundled) ? bundled : 'temporal';
}

async function list(client: Client, args: string[], uiUrl: string, namespace: string): Promise<void> {
  const { values } = parseArgs({ args, options: { state: { type: 'string' }, customer: { type: 'string' }, limit: { type: 'string', default: '50' } } });
  const limit = Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit must be a positive integer');
  const query = sagaListQuery({ state: values.state, customerId: values.customer });
  console.log(`query: ${query}`);
  let count = 0;
  for await (const workflow of client.workflow.list({ query, pageSize: limit })) {
    const attributes = workflow.typedSearchAttributes;
    console.log(
      [
        workflow.workflowId.padEnd(60),
        workflow.type.padEnd(12),
        workflow.status.name.padEnd(11),
        String(attributes.get(SEARCH_ATTRIBUTES.sagaState) ?? '-').padEnd(13),
        workflow.startTime.toISOString(),
        `${uiUrl}/namespaces/${namespace}/workflows/${encodeURIComponent(workflow.workflowId)}`,
      ].join(' '),
    );
    if (++count >= limit) break;
  }
  if (count === 0) console.log('no sagas match');
}

async function describe(client: Client, args: string[], uiUrl: string, namespace: string): Promise<void> {
  const [orderId] = args;
  if (!orderId) throw new UsageError('describe needs an ORDER_ID');
  for (const workflowId of [createOrderWorkflowId(orderId), tccPaymentWorkflowId(orderId), cancelOrderWorkflowId(orderId)]) {
    const handle = client.workflow.getHandle(workflowId);
    try {
      const description = await handle.describe();
      // A closed saga's query is answered by a worker replaying it, so it needs the worker running.
      const progress = await handle
        .query(getSagaProgressQuery)
        .catch((error: unknown) => ({ unavailable: `${String(error)} (is a worker polling ${description.taskQueue}?)` }));
      console.log(
        JSON.stringify(
          {
            workflowId,
            runId: description.runId,
            type: description.type,
            status: description.status.name,
            sagaState: description.typedSearchAttributes.get(SEARCH_ATTRIBUTES.sagaState) ?? null,
            startTime: description.startTime,
            closeTime: description.closeTime ?? null,
            progress,
            webUi: `${uiUrl}/namespaces/${namespace}/workflows/${encodeURIComponent(workflowId)}/${description.runId}/history`,
          },
          null,
          2,
        ),
      );
    } catch (error) {
      if (!(error instanceof WorkflowNotFoundError)) throw error;
      console.log(JSON.stringify({ workflowId, status: 'NOT_STARTED' }));
    }
  }
}

/** What an open saga is waiting on: its pending activities (attempt, last failure), or nothing (a timer, a signal). */
async function waitingOn(client: Client, workflow: WorkflowExecutionInfo): Promise<string> {
  const { raw } = await client.workflow.getHandle(workflow.workflowId, workflow.runId).describe();
  const pending = raw.pendingActivities ?? [];
  if (pending.length === 0) return (raw.pendingChildren ?? []).length > 0 ? 'its child workflow' : 'no pending activity (a timer, an update or a signal)';
  return pending
    .map((activity) => {
      const failure = activity.lastFailure?.message ? `, last failure: ${activity.lastFailure.message.replace(/\s+/g, ' ').slice(0, 120)}` : '';
      return `${activity.activityType?.name ?? '?'} attempt ${activity.attempt ?? 1}${failure}`;
    })
    .join('; ');
}

async function stuck(client: Client, args: string[], uiUrl: string, namespace: string): Promise<void> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { 'older-than': { type: 'string', default: '5m' }, state: { type: 'string' } } });
  if (positionals.length > 0) throw new UsageError('stuck takes no arguments');
  const ageMs = parseAge(values['older-than']);
  const startedBefore = new Date(Date.now() - ageMs).toISOString();
  const query = `${sagaListQuery({ state: values.state })} AND ExecutionStatus = 'Running' AND StartTime < '${startedBefore}'`;
  console.log(`query: ${query}`);
  const byState = new Map<string, WorkflowExecutionInfo[]>();
  for await (const workflow of client.workflow.list({ query })) {
    const state = String(workflow.typedSearchAttributes.get(SEARCH_ATTRIBUTES.sagaState) ?? '-');
    byState.set(state, [...(byState.get(state) ?? []), workflow]);
  }
  if (byState.size === 0) {
    console.log(`no saga open for longer than ${values['older-than']}`);
    return;
  }
  for (const [state, workflows] of [...byState].sort(([a], [b]) => a.localeCompare(b))) {
    console.log(`\n${state} (${workflows.length})`);
    for (const workflow of workflows.sort((a, b) => a.startTime.getTime() - b.startTime.getTime())) {
      const age = Math.round((Date.now() - workflow.startTime.getTime()) / 1000);
      console.log(
        `  ${workflow.workflowId.padEnd(60)} ${workflow.type.padEnd(12)} open ${String(age).padStart(6)}s  ${await waitingOn(client, workflow)}  ${uiUrl}/namespaces/${namespace}/workflows/${encodeURIComponent(workflow.workflowId)}`,
      );
    }
  }
}

async function replay(client: Client, args: string[]): Promise<void> {
  // The replay worker's lifecycle lines would bury the answer.
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { 'run-id': { type: 'string' }, workflows: { type: 'string' } } });
  const [workflowId, ...rest] = positionals;
  if (!workflowId || rest.length > 0) throw new UsageError('replay needs one WORKFLOW_ID (see ./oms saga list)');
  const handle = client.workflow.getHandle(workflowId, values['run-id']);
  const { runId, type } = await handle.describe();
  const history = await handle.fetchHistory();
  console.log(`replaying ${type} ${workflowId} (run ${runId}, ${history.events?.length ?? 0} events) against ${values.workflows ?? 'the current workflows/'}`);
  const outcome = await replayHistory(history, workflowId, { workflowsPath: values.workflows });
  if (outcome.ok) {
    console.log(`OK: the whole history replays without a non-determinism error`);
    return;
  }
  // Core's message wraps the one line that matters ("[TMPRL1100] Nondeterminism error: ...").
  console.log(`NON-DETERMINISTIC: ${/message: "([^"]+)"/.exec(outcome.error)?.[1] ?? outcome.error}`);
  if (outcome.divergence) {
    console.log(`diverged at the workflow task completed in event ${outcome.divergence.workflowTaskCompletedEventId}; the history recorded after it:`);
    for (const event of outcome.divergence.recordedCommands) console.log(`  event ${event.eventId}: ${event.eventType}${event.detail ? ` ${event.detail}` : ''}`);
  }
  process.exitCode = 1;
}

function reset(args: string[], config: ReturnType<typeof loadConfig>): void {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { to: { type: 'string', default: 'first' }, reason: { type: 'string', default: 'operator retry of a failed saga' }, yes: { type: 'boolean', default: false } },
  });
  const [workflowId] = positionals;
  if (!workflowId) throw new UsageError('reset needs a WORKFLOW_ID (see ./oms saga list)');
  const type = { first: 'FirstWorkflowTask', last: 'LastWorkflowTask' }[values.to ?? 'first'];
  if (!type) throw new UsageError('--to must be first or last');
  const command = [
    temporalCli(),
    'workflow',
    'reset',
    '--address',
    config.TEMPORAL_ADDRESS,
    '--namespace',
    config.TEMPORAL_NAMESPACE,
    '--workflow-id',
    workflowId,
    '--type',
    type,
    '--reason',
    values.reason ?? '',
  ];
  console.log(`${values.yes ? 'running' : 'would run'}: ${command.map((part) => (/\s/.test(part) ? `'${part}'` : part)).join(' ')}`);
  console.log(
    type === 'FirstWorkflowTask'
      ? 'The saga re-runs from its start; its steps are idempotent by order id, so effects that already happened are not repeated.'
      : 'The last workflow task is retried; use after deploying a fix for a workflow task failure.',
  );
  if (!values.yes) {
    console.log('add --yes to run it');
    return;
  }
  const result = spawnSync(command[0]!, command.slice(1), { stdio: 'inherit' });
  process.exitCode = result.status ?? 1;
}

/** Who asked, for the log line every operator action leaves. */
function operator(): string {
  return process.env.OMS_OPERATOR ?? userInfo().username;
}

async function retry(client: Client, args: string[]): Promise<void> {
  const [orderId] = args;
  if (!orderId) throw new UsageError('retry needs an ORDER_ID (see ./oms saga list --state COMPENSATION_FAILED)');
  const stuck = async (workflowId: string) => {
    try {
      const description = await client.workflow.getHandle(workflowId).describe();
      return { description, stuck: description.typedSearchAttributes.get(SEARCH_ATTRIBUTES.sagaState) === 'COMPENSATION_FAILED' };
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) return undefined;
      throw error;
    }
  };
  const audit = (action: string) => console.log(JSON.stringify({ at: new Date().toISOString(), operator: operator(), orderId, action }));

  const create = await stuck(createOrderWorkflowId(orderId));
  if (create?.stuck && create.description.status.name === 'RUNNING') {
    await client.workflow.getHandle(createOrderWorkflowId(orderId)).signal(retryCompensationSignal);
    audit(`signalled ${retryCompensationSignal.name} to ${createOrderWorkflowId(orderId)}`);
    return;
  }
  const cancelId = cancelOrderWorkflowId(orderId);
  const cancel = await stuck(cancelId);
  if (cancel?.stuck && cancel.description.status.name === 'FAILED') {
    // The same cancellation again, with its recorded input; its steps are idempotent by order id.
    const history = await client.workflow.getHandle(cancelId).fetchHistory();
    const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
    if (!payload) throw new Error(`${cancelId} has no recorded input`);
    const input = defaultPayloadConverter.fromPayload<CancelOrderInput>(payload);
    await client.workflow.start(WORKFLOW_TYPES.cancelOrder, {
      workflowId: cancelId,
      taskQueue: cancel.description.taskQueue,
      args: [input],
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
      typedSearchAttributes: [
        { key: SEARCH_ATTRIBUTES.orderId, value: orderId },
        { key: SEARCH_ATTRIBUTES.sagaState, value: 'RUNNING' },
      ],
    });
    audit(`started ${cancelId} again`);
    return;
  }
  console.log(`no saga of order ${orderId} is in COMPENSATION_FAILED; nothing to retry`);
  process.exitCode = 1;
}

async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  const config = loadConfig();
  if (command === 'reset') return reset(args, config);
  if (!['list', 'describe', 'retry', 'stuck', 'replay'].includes(command ?? '')) throw new UsageError(command ? `unknown saga command '${command}'` : 'missing command');
  const connection = await Connection.connect(temporalConnectionOptions(config));
  try {
    const client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
    if (command === 'list') await list(client, args, config.TEMPORAL_UI_URL, config.TEMPORAL_NAMESPACE);
    else if (command === 'retry') await retry(client, args);
    else if (command === 'stuck') await stuck(client, args, config.TEMPORAL_UI_URL, config.TEMPORAL_NAMESPACE);
    else if (command === 'replay') await replay(client, args);
    else await describe(client, args, config.TEMPORAL_UI_URL, config.TEMPORAL_NAMESPACE);
  } finally {
    await connection.close();
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  console.error(error instanceof UsageError ? `${error.message}\n${USAGE}` : error);
  process.exitCode = error instanceof UsageError ? 2 : 1;
});
