/**
 * A worker killed with SIGKILL in the middle of a saga, at the worst moment: the payment capture
 * has committed in the payment service but the worker never reported it to Temporal. The capture
 * is a local activity, so what is lost is the whole workflow task that ran it (both tries, the
 * stock confirm and the capture, none of their markers recorded). The task times out, another
 * worker replays the saga and runs every one of those calls again (each answers as the first time:
 * the barriers, the same payment), and finishes it: one capture, one stock deduction, one ORDER_PAID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { testAuthEnv } from '../helpers/auth';
import { tccPaymentWorkflowId } from '../../workflows/order-contract';
import { accountOf, createCustomer, localActivityMarker, createProduct, orderEvents, orderRow, paymentsOf, placeOrder, startCreateOrder, startSagaHarness, stockOf, type SagaHarness } from './saga-harness';

const script = fileURLToPath(new URL('../fixtures/saga-worker-process.ts', import.meta.url));

function startWorkerProcess(harness: SagaHarness): { child: ChildProcess; lines: AsyncIterator<string> } {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    env: {
      ...process.env,
      NODE_ENV: 'test',
      LOG_LEVEL: 'silent',
      TEMPORAL_ADDRESS: inject('stack').TEMPORAL_ADDRESS,
      WORKER_ORDER_DATABASE_URL: harness.order.workerUrl,
      PRODUCT_SERVICE_URL: harness.product.url,
      PAYMENT_SERVICE_URL: harness.payment.url,
      WORKER_SERVICE_TOKEN: testAuthEnv.WORKER_SERVICE_TOKEN,
      OMS_TEST_TASK_QUEUE: harness.temporal.taskQueue,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  async function* readLines(): AsyncGenerator<string> {
    let buffered = '';
    for await (const chunk of child.stdout) {
      buffered += String(chunk);
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        yield buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
      }
    }
  }
  return { child, lines: readLines() };
}

async function waitForLine(lines: AsyncIterator<string>, prefix: string): Promise<string> {
  for (;;) {
    const next = await lines.next();
    if (next.done) throw new Error(`worker process ended before printing ${prefix}`);
    if (next.value.startsWith(prefix)) return next.value;
  }
}

describe('a saga worker killed mid-saga', () => {
  let harness: SagaHarness;
  let child: ChildProcess | undefined;
  beforeAll(async () => {
    harness = await startSagaHarness('worker-crash', { runWorker: false });
  });
  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await harness?.close();
  });

  it('is finished by another worker with no duplicate effect', async () => {
    const customerId = await createCustomer(harness, { balance: '100.00' });
    const productId = await createProduct(harness, 5, '15.00');
    const input = await placeOrder(harness, { customerId, lines: [{ productId, quantity: 2, unitPriceMinor: 1500 }] });

    const started = startWorkerProcess(harness);
    child = started.child;
    await waitForLine(started.lines, 'READY');
    const handle = await startCreateOrder(harness, input);
    await waitForLine(started.lines, 'CAPTURED');

    // Money is captured in the payment service; Temporal still sees capturePayment running.
    expect(await paymentsOf(harness, input.orderId)).toHaveLength(1);
    child.kill('SIGKILL');
    await once(child, 'exit');
    expect((await orderRow(harness, input.orderId)).status).toBe('PENDING');

    const replacement = await harness.startWorker();
    try {
      const result = await handle.result();
      expect(result.status).toBe('PAID');
    } finally {
      await replacement.stop();
    }

    // The capture ran twice: the killed worker's workflow task timed out, and the task that
    // recorded the capture's marker was completed by the replacement.
    const tccHistory = await harness.temporal.client.workflow.getHandle(tccPaymentWorkflowId(input.orderId)).fetchHistory();
    const events = tccHistory.events ?? [];
    expect(events.some((event) => event.workflowTaskTimedOutEventAttributes)).toBe(true);
    const captureMarker = events.findIndex((event) => localActivityMarker(event)?.activityType === 'capturePayment');
    expect(captureMarker).toBeGreaterThan(0);
    const completedBy = events.slice(0, captureMarker).findLast((event) => event.workflowTaskCompletedEventAttributes)?.workflowTaskCompletedEventAttributes?.identity;
    expect(completedBy).toBe(replacement.worker.options.identity);
    expect(await paymentsOf(harness, input.orderId)).toHaveLength(1);
    expect(await accountOf(harness, customerId)).toEqual(expect.objectContaining({ balance: '70.00', held: '0.00' }));
    expect(await stockOf(harness.product.db, productId)).toEqual({ stock: 3, reserved: 0, available: 3 });
    expect(await orderRow(harness, input.orderId)).toMatchObject({ status: 'PAID', payment_id: (await paymentsOf(harness, input.orderId))[0]!.id });
    expect(await orderEvents(harness.order.db, input.orderId)).toEqual(['ORDER_CONFIRMED', 'ORDER_PAID']);
  });
});
