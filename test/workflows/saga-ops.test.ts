/**
 * `./oms saga replay` and `./oms saga stuck` on sagas that really ran (the real Temporal server and
 * participants): replay passes on a recorded history with the current workflows and names the
 * diverging events with a deliberately changed one; stuck lists a saga open past an age, by state.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cancelCheckoutUpdate, createOrderWorkflowId, tccPaymentWorkflowId } from '../../workflows/order-contract';
import { testConfig } from '../helpers/stack';
import { createCustomer, createProduct, placeOrder, startCreateOrder, startSagaHarness, waitForOrderStatus, type SagaHarness } from './saga-harness';

const run = promisify(execFile);
const CLI_TEST_TIMEOUT_MS = 360_000;

/** Runs `./oms saga ARGS` as an operator would; resolves with its output and exit code. */
async function saga(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  const env = { ...process.env, TEMPORAL_ADDRESS: testConfig().TEMPORAL_ADDRESS };
  return run('npx', ['--no-install', 'tsx', 'infra/ops/saga.ts', ...args], { env, timeout: 120_000 }).then(
    ({ stdout, stderr }) => ({ stdout, stderr, code: 0 }),
    (error: { stdout: string; stderr: string; code: number }) => ({ stdout: error.stdout, stderr: error.stderr, code: error.code }),
  );
}

describe('./oms saga replay and stuck', () => {
  let harness: SagaHarness;
  beforeAll(async () => {
    harness = await startSagaHarness('saga-ops');
  });
  afterAll(() => harness?.close());

  // Each `./oms saga` call is a fresh tsx process (compile, load the Temporal client, bundle the
  // workflows for a replay): 5-20 s apiece on a busy 2-core machine, and these tests make several.
  it('replay: a paid saga replays OK against the current code, and a changed tccPayment is caught at the events that diverge', { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const customerId = await createCustomer(harness);
    const productId = await createProduct(harness, 5, '10.00');
    const input = await placeOrder(harness, { customerId, lines: [{ productId, quantity: 1, unitPriceMinor: 1000 }] });
    await (await startCreateOrder(harness, input)).result();

    for (const workflowId of [createOrderWorkflowId(input.orderId), tccPaymentWorkflowId(input.orderId)]) {
      const replayed = await saga('replay', workflowId);
      expect({ workflowId, code: replayed.code, stdout: replayed.stdout }).toEqual({ workflowId, code: 0, stdout: expect.stringContaining('OK: the whole history replays') as unknown });
    }

    const changed = await saga('replay', tccPaymentWorkflowId(input.orderId), '--workflows', 'test/fixtures/nondeterministic-workflows.ts');
    expect(changed.code).toBe(1);
    expect(changed.stdout).toContain('NON-DETERMINISTIC: [TMPRL1100] Nondeterminism error');
    // The tries are the first commands, local activities recorded as markers right after the first
    // workflow task (events 1-4): the swapped order diverges there.
    expect(changed.stdout).toMatch(/diverged at the workflow task completed in event 4; the history recorded after it:\n {2}event 5: MARKER_RECORDED/);

    expect((await saga('replay', `order-${input.orderId}-nonexistent`)).code).toBe(1);
    expect((await saga('replay')).code).toBe(2);
  });

  it('stuck: a checkout held past the age is listed under its state with what it waits on; a younger bound hides it', { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const customerId = await createCustomer(harness);
    const productId = await createProduct(harness, 5, '10.00');
    const input = await placeOrder(harness, { customerId, lines: [{ productId, quantity: 1, unitPriceMinor: 1000 }], confirmation: 'manual', holdTtlSeconds: 300 });
    const handle = await startCreateOrder(harness, input);
    await waitForOrderStatus(harness, input.orderId, 'AWAITING_CONFIRMATION');
    const tccId = tccPaymentWorkflowId(input.orderId);

    // Visibility is eventually consistent: ask until the server has indexed both sagas.
    let listing = '';
    await expect
      .poll(
        async () => {
          listing = (await saga('stuck', '--older-than', '1s')).stdout;
          return listing.includes(tccId) && listing.includes(`${createOrderWorkflowId(input.orderId)} `);
        },
        { timeout: 120_000, interval: 1_000 },
      )
      .toBe(true);
    const section = listing.slice(listing.indexOf('\nRUNNING ('));
    expect(section).toMatch(new RegExp(`${tccId}\\s+tccPayment\\s+open\\s+\\d+s\\s+no pending activity`));
    expect(section).toMatch(new RegExp(`${createOrderWorkflowId(input.orderId)}\\s+createOrder\\s+open\\s+\\d+s\\s+its child workflow`));

    expect((await saga('stuck', '--older-than', '1h')).stdout).not.toContain(tccId);
    expect((await saga('stuck', '--older-than', '1s', '--state', 'COMPENSATING')).stdout).not.toContain(tccId);
    const bad = await saga('stuck', '--older-than', '5 minutes');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--older-than must look like 90s, 5m, 2h or 1d');

    await harness.temporal.client.workflow.getHandle(tccId).executeUpdate(cancelCheckoutUpdate, { args: [{ reason: 'test done' }] });
    await handle.result().catch(() => undefined);
  });
});
