/**
 * Determinism: the histories under test/workflows/histories/ (recorded from real runs, see
 * history-recorder.ts) must replay against today's workflows/ without a DeterminismViolationError.
 * A change that breaks a running saga fails here before it reaches a worker. The second test proves
 * this check can fail: an incompatible variant of tccPayment is caught.
 */
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { describe, expect, it } from 'vitest';
import { idleSagaMetrics } from '../../infra/ops/saga-replay';
import { workflowInterceptorModules, workflowsPath } from '../../workers/workflow-bundle';
import { historiesDir, parseHistory } from './history-recorder';

async function recordedHistories(): Promise<{ workflowId: string; history: ReturnType<typeof parseHistory> }[]> {
  const files = (await readdir(historiesDir)).filter((file) => file.endsWith('.json')).sort();
  return Promise.all(files.map(async (file) => ({ workflowId: file.replace(/\.json$/, ''), history: parseHistory(await readFile(`${historiesDir}${file}`, 'utf8')) })));
}

describe('workflow replay', () => {
  it('every committed history replays against the current workflows', async () => {
    const histories = await recordedHistories();
    // Every path of every saga: paid; each decline; each compensation (a failed capture, a lost
    // capture answer, an undo that failed past its horizon, before and after that patch);
    // cancellation at each step (validating the customer, trying, holding, paying, after payment);
    // manual checkout confirmed, cancelled, expired.
    expect(histories.map((h) => h.workflowId)).toEqual(
      expect.arrayContaining([
        'create-order-paid',
        'create-order-insufficient-stock',
        'create-order-insufficient-funds',
        'create-order-customer-inactive',
        'create-order-cancelled-while-validating',
        'create-order-cancelled-while-trying',
        'create-order-cancelled-while-holding',
        'create-order-cancelled-while-paying',
        'create-order-compensation-failed-before-patch',
        'create-order-compensation-failed-then-retried',
        'tcc-payment-auto',
        'tcc-payment-manual-confirmed',
        'tcc-payment-manual-expired',
        'tcc-payment-manual-cancelled-by-customer',
        'tcc-payment-manual-cancelled-by-cancel-order',
        'tcc-payment-cancelled-while-trying',
        'tcc-payment-capture-hold-expired',
        'tcc-payment-capture-answer-lost',
        'tcc-payment-hold-within-reservations',
        'cancel-order-while-validating',
        'cancel-order-while-trying',
        'cancel-order-paid',
        'cancel-order-awaiting-confirmation',
        'cancel-order-already-cancelling',
        'cancel-order-refused',
        // A refused cancel recorded before WORKFLOW_PATCHES.refusedCancelState (it ended COMPENSATED).
        'cancel-order-refused-before-patch',
        // Recorded before WORKFLOW_PATCHES.localActivities: sagas of that shape may still be running.
        'create-order-paid-remote-shape',
        'create-order-insufficient-stock-remote-shape',
        'create-order-insufficient-funds-remote-shape',
        'create-order-customer-inactive-remote-shape',
        'create-order-cancelled-while-holding-remote-shape',
        'create-order-cancelled-while-paying-remote-shape',
        'create-order-compensation-failed-then-retried-remote-shape',
        'tcc-payment-auto-remote-shape',
        'tcc-payment-manual-confirmed-remote-shape',
        'tcc-payment-manual-expired-remote-shape',
        'tcc-payment-manual-cancelled-by-customer-remote-shape',
        'tcc-payment-manual-cancelled-by-cancel-order-remote-shape',
        'tcc-payment-capture-hold-expired-remote-shape',
        'tcc-payment-capture-answer-lost-remote-shape',
        'tcc-payment-hold-within-reservations-remote-shape',
        'cancel-order-paid-remote-shape',
        'cancel-order-awaiting-confirmation-remote-shape',
        'cancel-order-already-cancelling-remote-shape',
      ]),
    );
    const results: { workflowId: string; error?: unknown }[] = [];
    for await (const result of Worker.runReplayHistories({ workflowsPath, interceptors: { workflowModules: workflowInterceptorModules }, sinks: idleSagaMetrics }, histories)) results.push(result);

    expect(results).toHaveLength(histories.length);
    for (const result of results) expect({ workflowId: result.workflowId, error: result.error }).toEqual({ workflowId: result.workflowId, error: undefined });
  });

  it('a workflow that schedules its activities in another order is caught as non-deterministic', async () => {
    const [tcc] = (await recordedHistories()).filter((h) => h.workflowId === 'tcc-payment-auto');
    const variant = fileURLToPath(new URL('../fixtures/nondeterministic-workflows.ts', import.meta.url));

    const replay = Worker.runReplayHistory({ workflowsPath: variant }, tcc!.history, tcc!.workflowId);

    await expect(replay).rejects.toBeInstanceOf(DeterminismViolationError);
  });
});
