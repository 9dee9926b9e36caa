/**
 * The running production topology (`./oms test --topology production` started it), driven from
 * outside the way an operator and its customers would: orders through the public API (the
 * balancer), faults by stopping and killing the processes infra/stack.sh and infra/apps.sh run,
 * and the verdict from `./oms check`, which reads every database, Kafka and Temporal.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import type { Kysely } from 'kysely';
import { openServiceDatabase } from '../../db/databases';
import type { SharedTables } from '../../lib/shared-tables';
import { ensureDevKeyPair, loadDevSigningKey, signAccessToken, stateDir } from '../../infra/dev-auth';
import { loadConfig } from '../../lib/config';
import { temporalConnectionOptions } from '../../lib/temporal-connection';
import { createOrderWorkflowId } from '../../workflows/order-contract';
import { requestUntilAnswered, statusesOnceAllIn, stockShop, type Headers } from '../helpers/shop';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const FINAL_STATUSES = new Set(['PAID', 'FAILED', 'CANCELLED']);

export const config = loadConfig();

/** light or production, as recorded by ./oms up / ./oms test. */
export function runningTopology(): string {
  try {
    return readFileSync(join(stateDir(), 'topology'), 'utf8').trim();
  } catch {
    return 'light';
  }
}

/** `bash infra/stack.sh|apps.sh ACTION NAME...`, with this process's environment (its ports). */
export async function infra(script: 'stack' | 'apps', action: 'start' | 'stop' | 'restart', ...names: string[]): Promise<void> {
  await run('bash', [join(REPO, `infra/${script}.sh`), action, ...names], { cwd: REPO, timeout: 300_000 });
}

/** The pid infra/stack.sh or infra/apps.sh recorded for a component or app. */
export function pidOf(name: string): number {
  const pid = Number(readFileSync(join(stateDir(), 'run', `${name}.pid`), 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`no pid for ${name}`);
  return pid;
}

/** SIGKILL, as a crash or an OOM kill would: no shutdown hook runs. Returns the pid it killed. */
export function crash(name: string): number {
  const pid = pidOf(name);
  process.kill(pid, 'SIGKILL');
  return pid;
}

async function withTemporal<T>(work: (client: Client) => Promise<T>): Promise<T> {
  const connection = await Connection.connect(temporalConnectionOptions(config));
  try {
    return await work(new Client({ connection, namespace: config.TEMPORAL_NAMESPACE }));
  } finally {
    await connection.close();
  }
}

/**
 * The identities (worker@host:pid) that completed workflow tasks or ran activities of an order's
 * saga, in history order. With `whenClosed`, once the saga's execution has closed: an order reads
 * PAID as soon as the local activity that set it has committed, a moment before the workflow task
 * that records it completes.
 */
export async function sagaWorkerIdentities(orderId: string, { whenClosed = false } = {}): Promise<string[]> {
  return withTemporal(async (client) => {
    const handle = client.workflow.getHandle(createOrderWorkflowId(orderId));
    // Only the history is asked for here; how the saga ended is the caller's to check.
    if (whenClosed) await handle.result().catch(() => undefined);
    const history = await handle.fetchHistory();
    return (history.events ?? [])
      .map((event) => event.workflowTaskCompletedEventAttributes?.identity ?? event.activityTaskStartedEventAttributes?.identity)
      .filter((identity): identity is string => Boolean(identity));
  });
}

/**
 * Those of `orderIds` whose createOrder saga Temporal still runs. Asked of Temporal, not of the
 * order API: a customer polling many orders is rate limited there (429), and an order that did not
 * answer is not an open saga.
 */
export async function openSagas(orderIds: readonly string[]): Promise<string[]> {
  return withTemporal(async (client) => {
    const open: string[] = [];
    for (const orderId of orderIds) {
      // Not started yet (its start intent not drained): not open either.
      const execution = await client.workflow
        .getHandle(createOrderWorkflowId(orderId))
        .describe()
        .catch((error: unknown) => {
          if (error instanceof WorkflowNotFoundError) return undefined;
          throw error;
        });
      if (execution?.status.name === 'RUNNING') open.push(orderId);
    }
    return open;
  });
}

/** `./oms check --wait SECONDS --json`: every invariant across the databases, Kafka and Temporal. */
export async function checkInvariants(waitSeconds: number): Promise<{ ok: boolean; violations: unknown[] }> {
  const result = await run(join(REPO, 'oms'), ['check', '--wait', String(waitSeconds), '--json'], { cwd: REPO, timeout: (waitSeconds + 120) * 1000 }).catch(
    (error: { stdout?: string; stderr?: string; code?: number }) => {
      if (error.code === 1 && error.stdout) return { stdout: error.stdout };
      throw new Error(`./oms check failed (${error.code}): ${error.stderr ?? ''}`);
    },
  );
  return JSON.parse(result.stdout) as { ok: boolean; violations: unknown[] };
}

/** Outbox events of the three databases dead-lettered (FAILED) since `since`. */
export async function deadLetteredSince(since: Date): Promise<number> {
  let failed = 0;
  for (const name of ['order', 'product', 'payment'] as const) {
    // Every service database has the shared outbox table.
    const db = openServiceDatabase(config, name, 'topology-test') as unknown as Kysely<SharedTables>;
    try {
      const row = await db.selectFrom('outbox_events').select((eb) => eb.fn.countAll<string>().as('count')).where('status', '=', 'FAILED').where('created_at', '>=', since).executeTakeFirstOrThrow();
      failed += Number(row.count);
    } finally {
      await db.destroy();
    }
  }
  return failed;
}

/** What the shop's orders did, read from the three databases: one order, one unit and 1.00 each. */
export async function shopLedger(shop: Pick<Shop, 'productId' | 'customerId'>): Promise<{ orders: number; stock: number; balanceMinor: number; payments: number }> {
  const orderDb = openServiceDatabase(config, 'order', 'topology-test');
  const productDb = openServiceDatabase(config, 'product', 'topology-test');
  const paymentDb = openServiceDatabase(config, 'payment', 'topology-test');
  try {
    const orders = await orderDb.selectFrom('orders').select((eb) => eb.fn.countAll<string>().as('count')).where('customer_id', '=', shop.customerId).executeTakeFirstOrThrow();
    const product = await productDb.selectFrom('products').select('stock_quantity').where('id', '=', shop.productId).executeTakeFirstOrThrow();
    const account = await paymentDb.selectFrom('customer_accounts').select('balance_minor').where('customer_id', '=', shop.customerId).executeTakeFirstOrThrow();
    const payments = await paymentDb.selectFrom('payments').select((eb) => eb.fn.countAll<string>().as('count')).where('customer_id', '=', shop.customerId).executeTakeFirstOrThrow();
    return { orders: Number(orders.count), stock: product.stock_quantity, balanceMinor: Number(account.balance_minor), payments: Number(payments.count) };
  } finally {
    await Promise.all([orderDb.destroy(), productDb.destroy(), paymentDb.destroy()]);
  }
}

export interface Shop {
  productId: string;
  customerId: string;
  asCustomer: Headers;
  /** Places one order for one unit; resolves with its id once accepted (202). */
  placeOrder(): Promise<string>;
  /** Each order's final status, once all are final. */
  settled(orderIds: readonly string[], timeoutMs: number): Promise<Map<string, string>>;
}

/** A product with `stock` units at 1.00 and a customer with money for all of them. */
export async function openShop(label: string, stock: number): Promise<Shop> {
  ensureDevKeyPair();
  const key = loadDevSigningKey();
  const settings = { issuer: config.AUTH_JWT_ISSUER, audience: config.AUTH_JWT_AUDIENCE, ttlSeconds: 3_600 };
  const asOperator = { authorization: `Bearer ${await signAccessToken(key, { operator: `topology-${label}` }, settings)}` };
  const endpoints = { order: config.ORDER_SERVICE_URL, product: config.PRODUCT_SERVICE_URL, payment: config.PAYMENT_SERVICE_URL };
  const runId = `${label}-${randomUUID().slice(0, 8)}`;
  const { customerId, productIds } = await stockShop(endpoints, asOperator, { title: 'Topology', skuPrefix: 'TOPO', runId, products: 1, units: stock, price: '1.00', balance: `${stock}.00` });
  const productId = productIds[0]!;
  const asCustomer = { authorization: `Bearer ${await signAccessToken(key, { customerId }, settings)}` };

  return {
    productId,
    customerId,
    asCustomer,
    async placeOrder() {
      const answer = await requestUntilAnswered<{ id: string }>('POST', `${endpoints.order}/orders`, asCustomer, { items: [{ productId, quantity: 1 }] });
      if (answer.status !== 202) throw new Error(`order refused: ${answer.status} ${JSON.stringify(answer.body)}`);
      return answer.body.id;
    },
    settled: (orderIds, timeoutMs) => statusesOnceAllIn(endpoints.order, asCustomer, orderIds, FINAL_STATUSES, timeoutMs),
  };
}

/**
 * Places `count` orders, `concurrency` at a time; `during` runs once `startAfter` have been accepted,
 * with the ids accepted so far (the live list: it grows while the rest keep coming).
 */
export async function placeOrdersWhile(
  shop: Shop,
  count: number,
  concurrency: number,
  startAfter: number,
  during: (accepted: readonly string[]) => Promise<void>,
): Promise<string[]> {
  const ids: string[] = [];
  let next = 0;
  let fault: Promise<void> | undefined;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next += 1;
        ids.push(await shop.placeOrder());
        if (ids.length >= startAfter && !fault) fault = during(ids);
      }
    }),
  );
  await fault;
  return ids;
}
