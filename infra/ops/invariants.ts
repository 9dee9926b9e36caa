/**
 * What must hold across the whole system once it has settled, read from the three databases,
 * Kafka and Temporal. `./oms check` runs these against the stack; the fault suite runs them after
 * each fault. Every check returns the violations it found, each naming what it is about.
 *
 *   stock-conservation     per product: initial + restocked = on hand + sold
 *   stock-reserved         per product: reserved = open (RESERVED) holds
 *   money-conservation     per account: initial + refunded = balance + captured
 *   money-held             per account: held = open (RESERVED) holds
 *   paid-settled           a PAID order has its stock confirmed (not restocked) and its money captured (not refunded)
 *   closed-released        a FAILED or CANCELLED order holds nothing: no open hold, no unsold stock, every capture refunded
 *   needs-attention        no order is COMPENSATION_FAILED (an undo failed past its retry horizon)
 *   outbox-delivered       every outbox row is published or dead-lettered
 *   timeline-complete      every published event about an order is in that order's timeline
 *   consumer-caught-up     the timeline consumer has read every event topic to its end
 *   saga-exists            every order (older than the grace period) has its createOrder saga
 *   saga-bounded           no saga has been open longer than the bound
 */
import { Client, Connection } from '@temporalio/client';
import type { Admin } from 'kafkajs';
import { sql, type Kysely } from 'kysely';
import { openServiceDatabase } from '../../db/databases';
import type { OrderDatabase } from '../../db/order/schema';
import type { PaymentDatabase } from '../../db/payment/schema';
import type { ProductDatabase } from '../../db/product/schema';
import type { Config } from '../../lib/config';
import { createKafka } from '../../lib/kafka';
import { temporalConnectionOptions } from '../../lib/temporal-connection';
import { ORDER_TIMELINE_GROUP, ORDER_TIMELINE_TOPICS } from '../../workers/order-events-consumer';
import { createOrderWorkflowId, SEARCH_ATTRIBUTES, WORKFLOW_TYPES } from '../../workflows/order-contract';

export interface Violation {
  check: string;
  /** What the violation is about: a product, an account, an order, a database, a saga. */
  subject: string;
  detail: string;
}

export interface InvariantSources {
  orderDb: Kysely<OrderDatabase>;
  productDb: Kysely<ProductDatabase>;
  paymentDb: Kysely<PaymentDatabase>;
  temporal: Client;
  kafka: Admin;
  /** The timeline consumer's group and the topics it reads. */
  timeline: { groupId: string; topics: readonly string[] };
  /** Orders younger than this may still be between their commit and their saga's start. */
  graceSeconds: number;
  /** A saga open longer than this is reported (a manual checkout's hold TTL plus its steps' time). */
  sagaBoundSeconds: number;
}

/**
 * The sources of a running OMS as its configuration names them: its three databases, its Kafka, its
 * Temporal namespace and the worker's timeline consumer group. `./oms check` and the fault suite
 * (on its private stack) both read a system this way. `close` releases every connection.
 */
export async function connectInvariantSources(
  config: Config,
  bounds: Pick<InvariantSources, 'graceSeconds' | 'sagaBoundSeconds'>,
): Promise<{ sources: InvariantSources; close: () => Promise<void> }> {
  const orderDb = openServiceDatabase(config, 'order', 'oms-check');
  const productDb = openServiceDatabase(config, 'product', 'oms-check');
  const paymentDb = openServiceDatabase(config, 'payment', 'oms-check');
  const kafka = createKafka(config, 'oms-check').admin();
  let connection: Connection | undefined;
  const close = async () => {
    await Promise.allSettled([kafka.disconnect(), connection?.close(), orderDb.destroy(), productDb.destroy(), paymentDb.destroy()]);
  };
  try {
    connection = await Connection.connect(temporalConnectionOptions(config));
    await kafka.connect();
  } catch (error) {
    await close();
    throw error;
  }
  return {
    sources: {
      orderDb,
      productDb,
      paymentDb,
      kafka,
      temporal: new Client({ connection, namespace: config.TEMPORAL_NAMESPACE }),
      timeline: { groupId: ORDER_TIMELINE_GROUP, topics: ORDER_TIMELINE_TOPICS },
      ...bounds,
    },
    close,
  };
}

const n = (value: unknown) => Number(value ?? 0);

async function stockChecks({ productDb }: InvariantSources): Promise<Violation[]> {
  const rows = await sql<{ id: string; sku: string; initial: number; stock: number; reserved: number; sold: string; restocked: string; held: string }>`
    SELECT p.id, p.sku, p.initial_stock_quantity AS initial, p.stock_quantity AS stock, p.reserved_quantity AS reserved,
           COALESCE(sum(r.quantity) FILTER (WHERE r.confirmed_at IS NOT NULL), 0) AS sold,
           COALESCE(sum(r.quantity) FILTER (WHERE r.restocked_at IS NOT NULL), 0) AS restocked,
           COALESCE(sum(r.quantity) FILTER (WHERE r.status = 'RESERVED'), 0) AS held
    FROM products p LEFT JOIN stock_reservations r ON r.product_id = p.id
    GROUP BY p.id`.execute(productDb);
  const violations: Violation[] = [];
  for (const row of rows.rows) {
    const subject = `product ${row.id} (${row.sku})`;
    if (n(row.initial) + n(row.restocked) !== n(row.stock) + n(row.sold)) {
      violations.push({ check: 'stock-conservation', subject, detail: `initial ${row.initial} + restocked ${row.restocked} != on hand ${row.stock} + sold ${row.sold}` });
    }
    if (n(row.reserved) !== n(row.held)) {
      violations.push({ check: 'stock-reserved', subject, detail: `reserved_quantity ${row.reserved} != open holds ${row.held}` });
    }
  }
  return violations;
}

async function moneyChecks({ paymentDb }: InvariantSources): Promise<Violation[]> {
  const rows = await sql<{ customer_id: string; initial: string; balance: string; held: string; captured: string; refunded: string; holds: string }>`
    SELECT a.customer_id, a.initial_balance_minor AS initial, a.balance_minor AS balance, a.held_minor AS held,
           (SELECT COALESCE(sum(p.amount_minor), 0) FROM payments p WHERE p.customer_id = a.customer_id) AS captured,
           (SELECT COALESCE(sum(f.amount_minor), 0) FROM refunds f JOIN payments p ON p.id = f.payment_id WHERE p.customer_id = a.customer_id) AS refunded,
           (SELECT COALESCE(sum(h.amount_minor), 0) FROM payment_reservations h WHERE h.customer_id = a.customer_id AND h.status = 'RESERVED') AS holds
    FROM customer_accounts a`.execute(paymentDb);
  const violations: Violation[] = [];
  for (const row of rows.rows) {
    const subject = `account ${row.customer_id}`;
    if (n(row.initial) + n(row.refunded) !== n(row.balance) + n(row.captured)) {
      violations.push({ check: 'money-conservation', subject, detail: `initial ${row.initial} + refunded ${row.refunded} != balance ${row.balance} + captured ${row.captured} (minor units)` });
    }
    if (n(row.held) !== n(row.holds)) {
      violations.push({ check: 'money-held', subject, detail: `held_minor ${row.held} != open holds ${row.holds}` });
    }
  }
  return violations;
}

interface OrderFacts {
  status: string;
  totalMinor: number;
  createdAt: Date;
  items: Map<string, number>;
  stock: { productId: string; quantity: number; status: string; restocked: boolean }[];
  holds: number;
  payments: { amount: number; refunded: number }[];
}

async function orderFacts({ orderDb, productDb, paymentDb }: InvariantSources): Promise<Map<string, OrderFacts>> {
  const facts = new Map<string, OrderFacts>();
  for (const order of await orderDb.selectFrom('orders').select(['id', 'status', 'total_minor', 'created_at']).execute()) {
    facts.set(order.id, { status: order.status, totalMinor: n(order.total_minor), createdAt: order.created_at, items: new Map(), stock: [], holds: 0, payments: [] });
  }
  const ids = [...facts.keys()];
  for (let start = 0; start < ids.length; start += 1_000) {
    const batch = ids.slice(start, start + 1_000);
    for (const item of await orderDb.selectFrom('order_items').select(['order_id', 'product_id', 'quantity']).where('order_id', 'in', batch).execute()) {
      facts.get(item.order_id)!.items.set(item.product_id, item.quantity);
    }
    for (const row of await productDb.selectFrom('stock_reservations').select(['order_id', 'product_id', 'quantity', 'status', 'restocked_at']).where('order_id', 'in', batch).execute()) {
      facts.get(row.order_id)?.stock.push({ productId: row.product_id, quantity: row.quantity, status: row.status, restocked: row.restocked_at !== null });
    }
    for (const row of await paymentDb.selectFrom('payment_reservations').select(['order_id']).where('order_id', 'in', batch).where('status', '=', 'RESERVED').execute()) {
      const order = facts.get(row.order_id);
      if (order) order.holds += 1;
    }
    for (const row of await paymentDb.selectFrom('payments').select(['order_id', 'amount_minor', 'refunded_minor']).where('order_id', 'in', batch).execute()) {
      facts.get(row.order_id)?.payments.push({ amount: n(row.amount_minor), refunded: n(row.refunded_minor) });
    }
  }
  return facts;
}

function orderChecks(facts: Map<string, OrderFacts>): Violation[] {
  const violations: Violation[] = [];
  for (const [orderId, order] of facts) {
    const subject = `order ${orderId} (${order.status})`;
    const sold = order.stock.filter((line) => line.status === 'CONFIRMED' && !line.restocked);
    const openStock = order.stock.filter((line) => line.status === 'RESERVED');
    const kept = order.payments.reduce((sum, payment) => sum + payment.amount - payment.refunded, 0);
    if (order.status === 'PAID') {
      for (const [productId, quantity] of order.items) {
        if (!sold.some((line) => line.productId === productId && line.quantity === quantity)) {
          violations.push({ check: 'paid-settled', subject, detail: `${quantity} of product ${productId} not confirmed (or restocked)` });
        }
      }
      if (order.payments.length !== 1 || kept !== order.totalMinor) {
        violations.push({ check: 'paid-settled', subject, detail: `captured and kept ${kept} of a total of ${order.totalMinor} (minor units) in ${order.payments.length} payment(s)` });
      }
    }
    if (order.status === 'FAILED' || order.status === 'CANCELLED') {
      if (openStock.length > 0 || order.holds > 0) violations.push({ check: 'closed-released', subject, detail: `${openStock.length} stock hold(s) and ${order.holds} payment hold(s) still open` });
      if (sold.length > 0) violations.push({ check: 'closed-released', subject, detail: `${sold.length} confirmed stock line(s) never restocked` });
      if (kept !== 0) violations.push({ check: 'closed-released', subject, detail: `${kept} (minor units) captured and not refunded` });
    }
    if (order.status === 'COMPENSATION_FAILED') {
      violations.push({ check: 'needs-attention', subject, detail: 'an undo failed past its retry horizon; fix the cause, then ./oms saga retry' });
    }
  }
  return violations;
}

/** The three databases by name; each has its own outbox. */
function databases({ orderDb, productDb, paymentDb }: InvariantSources) {
  return [['order_db', orderDb], ['product_db', productDb], ['payment_db', paymentDb]] as const;
}

async function outboxChecks(sources: InvariantSources): Promise<Violation[]> {
  const violations: Violation[] = [];
  for (const [name, db] of databases(sources)) {
    const { rows } = await sql<{ count: string; oldest: Date | null }>`SELECT count(*) AS count, min(created_at) AS oldest FROM outbox_events WHERE status = 'PENDING'`.execute(db);
    const pending = rows[0]!;
    if (n(pending.count) > 0) {
      violations.push({ check: 'outbox-delivered', subject: name, detail: `${pending.count} event(s) neither published nor dead-lettered, oldest from ${pending.oldest?.toISOString()}` });
    }
  }
  return violations;
}

async function timelineChecks(sources: InvariantSources, facts: Map<string, OrderFacts>): Promise<Violation[]> {
  const { orderDb } = sources;
  const published: { eventId: string; eventType: string; orderId: string; db: string }[] = [];
  for (const [name, db] of databases(sources)) {
    const rows = await sql<{ event_id: string; event_type: string; order_id: string }>`
      SELECT event_id, event_type, payload -> 'payload' ->> 'orderId' AS order_id
      FROM outbox_events WHERE status = 'PUBLISHED' AND payload -> 'payload' ->> 'orderId' IS NOT NULL`.execute(db);
    for (const row of rows.rows) if (facts.has(row.order_id)) published.push({ eventId: row.event_id, eventType: row.event_type, orderId: row.order_id, db: name });
  }
  const seen = new Set<string>();
  for (let start = 0; start < published.length; start += 1_000) {
    const batch = published.slice(start, start + 1_000).map((event) => event.eventId);
    for (const row of await orderDb.selectFrom('order_events').select('event_id').where('event_id', 'in', batch).execute()) seen.add(row.event_id);
  }
  return published
    .filter((event) => !seen.has(event.eventId))
    .map((event) => ({ check: 'timeline-complete', subject: `order ${event.orderId}`, detail: `${event.eventType} ${event.eventId} (${event.db}) published but not in the timeline` }));
}

async function consumerChecks({ kafka, timeline }: InvariantSources): Promise<Violation[]> {
  const violations: Violation[] = [];
  const committed = await kafka.fetchOffsets({ groupId: timeline.groupId, topics: [...timeline.topics] });
  for (const { topic, partitions } of committed) {
    const ends = await kafka.fetchTopicOffsets(topic);
    for (const end of ends) {
      const at = partitions.find((partition) => partition.partition === end.partition)?.offset ?? '-1';
      const behind = BigInt(end.high) - (at === '-1' ? BigInt(end.low) : BigInt(at));
      if (behind > 0n) violations.push({ check: 'consumer-caught-up', subject: `${timeline.groupId} ${topic}[${end.partition}]`, detail: `${behind} message(s) not yet consumed` });
    }
  }
  return violations;
}

async function sagaChecks({ temporal, graceSeconds, sagaBoundSeconds }: InvariantSources, facts: Map<string, OrderFacts>): Promise<Violation[]> {
  const violations: Violation[] = [];
  const started = new Set<string>();
  const typeList = Object.values(WORKFLOW_TYPES).map((type) => `'${type}'`).join(', ');
  for await (const workflow of temporal.workflow.list({ query: `WorkflowType = '${WORKFLOW_TYPES.createOrder}'` })) started.add(workflow.workflowId);
  const graceEdge = Date.now() - graceSeconds * 1000;
  for (const [orderId, order] of facts) {
    if (order.createdAt.getTime() < graceEdge && !started.has(createOrderWorkflowId(orderId))) {
      violations.push({ check: 'saga-exists', subject: `order ${orderId} (${order.status})`, detail: `no ${createOrderWorkflowId(orderId)} in Temporal` });
    }
  }
  const boundEdge = new Date(Date.now() - sagaBoundSeconds * 1000).toISOString();
  for await (const workflow of temporal.workflow.list({ query: `WorkflowType IN (${typeList}) AND ExecutionStatus = 'Running' AND StartTime < '${boundEdge}'` })) {
    const orderId = workflow.typedSearchAttributes.get(SEARCH_ATTRIBUTES.orderId);
    // Sagas of orders kept in other databases (a test's own) are not this check's to judge.
    if (orderId !== undefined && !facts.has(orderId)) continue;
    violations.push({
      check: 'saga-bounded',
      subject: `${workflow.type} ${workflow.workflowId}`,
      detail: `open since ${workflow.startTime.toISOString()} (bound ${sagaBoundSeconds}s), SagaState ${workflow.typedSearchAttributes.get(SEARCH_ATTRIBUTES.sagaState) ?? '-'}`,
    });
  }
  return violations;
}

/** Runs every check once. */
export async function checkInvariants(sources: InvariantSources): Promise<Violation[]> {
  const facts = await orderFacts(sources);
  const groups = await Promise.all([
    stockChecks(sources),
    moneyChecks(sources),
    Promise.resolve(orderChecks(facts)),
    outboxChecks(sources),
    timelineChecks(sources, facts),
    consumerChecks(sources),
    sagaChecks(sources, facts),
  ]);
  return groups.flat();
}

/**
 * Checks until nothing is violated or `waitSeconds` have passed: a system that has just recovered
 * from a fault is still finishing its work (retries, the relay's backlog, the consumer's lag), and
 * may not answer every read yet (a Kafka broker just started has not loaded its group coordinator):
 * a check that fails to read is taken again until the time is up, then its error is thrown.
 * Resolves with the last run's violations.
 */
export async function checkInvariantsSettled(sources: InvariantSources, waitSeconds: number, pauseMs = 1_000): Promise<Violation[]> {
  const deadline = Date.now() + waitSeconds * 1000;
  for (;;) {
    let violations: Violation[] | undefined;
    try {
      violations = await checkInvariants(sources);
    } catch (error) {
      if (Date.now() >= deadline) throw error;
    }
    if (violations && (violations.length === 0 || Date.now() >= deadline)) return violations;
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
}
