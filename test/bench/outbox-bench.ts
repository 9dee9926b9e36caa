/**
 * `./oms bench outbox [--backlog N] [--rate R] [--seconds S]`: the outbox relay, ours beside a
 * naive one, in one run, on one scratch database (created and dropped here) and the stack's Kafka.
 *
 * The scratch outbox starts as a service's does after a quiet period: N events already PUBLISHED
 * and the table analyzed then, so PostgreSQL plans the relay's statements believing almost nothing
 * is PENDING (autovacuum is off on the scratch table, so that stays true during the run, as it does
 * for hours on a large production outbox). For each relay:
 *   - drain: N PENDING rows committed up front, then the relay starts; events/s until none is PENDING.
 *   - steady: rows committed at R events/s for S seconds (10 rows per transaction every 10 ms) while
 *     the relay runs; commit-to-Kafka latency per event = the Kafka message timestamp (set by the
 *     producer when it sends) minus the row's created_at; commit-to-consumer as well (a consumer in
 *     this process receives every event).
 *
 * Ours is the real activity (workers/outbox-relay/activities.ts, run in a mock activity context, logging at
 * info to /dev/null as in production). The naive relay is built the way the design guide describes
 * it: every second, one transaction claims up to 100 PENDING rows, publishes each and waits for the
 * broker, and marks each row. It cannot go faster than 100 events/s, so it gets a smaller backlog
 * (--naive-backlog) and a shorter steady phase (--naive-seconds) at the same rate, during which it
 * falls behind: its latency is what that costs.
 *
 * Both relays run in this process, which also inserts and consumes: its CPU is reported with the
 * database's and Kafka's, per thousand events.
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { Kafka } from 'kafkajs';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { destination, pino } from 'pino';
import { Registry } from 'prom-client';
import { createOutboxRelayActivities, type OutboxRelayConfig } from '../../workers/outbox-relay/activities';
import { databaseOnPool } from '../../db/connection';
import { migrateToLatest } from '../../db/migrator';
import type { SharedTables } from '../../lib/shared-tables';
import { loadConfig } from '../../lib/config';
import { createKafka, TOPICS } from '../../lib/kafka';
import { eventHeaders, topicForEventType } from '../../workers/outbox-relay/relay';
import { createOutboxMetrics } from '../../workers/outbox-relay/metrics';
import { formatCpu, formatLatency, inTransaction, isMain, latencySummary, machineLine, measureCpu, stackProcesses, type CpuSample, type LatencySummary } from './bench-stats';

export interface OutboxBenchOptions {
  /** An administrator's URL: the scratch database is created and dropped through it. */
  adminUrl: string;
  kafka: Kafka;
  backlog: number;
  rate: number;
  seconds: number;
  naiveBacklog: number;
  naiveSeconds: number;
  /** Our relay's settings (batch size, poll interval, retries), as the worker reads them. */
  relayConfig: OutboxRelayConfig;
  processes?: Record<string, number>;
}

export interface PhaseResult {
  events: number;
  seconds: number;
  eventsPerSecond: number;
  cpu: CpuSample[];
}

export interface SteadyResult extends PhaseResult {
  commitToKafka: LatencySummary;
  commitToConsumer: LatencySummary;
}

export interface RelayResult {
  drain: PhaseResult;
  steady: SteadyResult;
}

export interface OutboxBenchResult {
  ours: RelayResult;
  naive: RelayResult;
}

/** The event type the scratch rows carry: not one the stack's consumers act on, so it goes to the general topic. */
const BENCH_EVENT_TYPE = 'BENCH_OUTBOX_EVENT';
const BENCH_TOPIC = topicForEventType(BENCH_EVENT_TYPE);
/** Distinct aggregates the rows are spread over (the Kafka key), like orders in flight. */
const AGGREGATES = 1_000;

interface Received {
  kafkaTimestamp: number;
  receivedAt: number;
  createdAt: number;
}

/** A relay under measurement: started on the scratch database, stopped when its phases are done. */
interface RelayUnderTest {
  stop: () => Promise<void>;
}

type StartRelay = () => Promise<RelayUnderTest>;

export async function runOutboxBench(options: OutboxBenchOptions): Promise<OutboxBenchResult> {
  const runId = randomUUID().slice(0, 8);
  const name = `oms_bench_outbox_${runId}`;
  const admin = new pg.Client({ connectionString: options.adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(options.adminUrl);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 10 });
  // An idle connection ended by the server is dropped by the pool; without a listener it would end the bench.
  pool.on('error', () => undefined);
  const db = databaseOnPool<SharedTables>(pool);
  const received = new Map<string, Received[]>();
  const consumer = options.kafka.consumer({ groupId: `oms-bench-outbox-${runId}`, allowAutoTopicCreation: false });
  const producer = options.kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  try {
    // The outbox as a service database has it (its indexes, its wake-ups after commit): migrated as
    // product_db is, so a later outbox migration reaches the bench without being listed here.
    await migrateToLatest(db, 'product');
    await afterQuietPeriod(db, options.backlog);
    await producer.connect();
    await startConsumer(options.kafka, consumer, `oms-bench-outbox-${runId}`, received);

    const phases = (label: string) => ({ drain: `${label}-drain-${runId}`, steady: `${label}-steady-${runId}` });
    const oursStart: StartRelay = async () => startOurRelay(db, url.toString(), options);
    const naiveStart: StartRelay = async () => startNaiveRelay(pool, producer);
    const ours = await measureRelay(db, oursStart, phases('ours'), options.backlog, options.rate, options.seconds, received, options.processes ?? {});
    const naive = await measureRelay(db, naiveStart, phases('naive'), options.naiveBacklog, options.rate, options.naiveSeconds, received, options.processes ?? {});
    return { ours, naive };
  } finally {
    await consumer.disconnect().catch(() => undefined);
    await producer.disconnect().catch(() => undefined);
    await db.destroy();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

/** A consumer of the bench topic, positioned at its end, that keeps what each phase's events went through. */
async function startConsumer(kafka: Kafka, consumer: ReturnType<Kafka['consumer']>, groupId: string, received: Map<string, Received[]>): Promise<void> {
  const kafkaAdmin = kafka.admin();
  await kafkaAdmin.connect();
  try {
    const ends = await kafkaAdmin.fetchTopicOffsets(BENCH_TOPIC);
    await kafkaAdmin.setOffsets({ groupId, topic: BENCH_TOPIC, partitions: ends.map(({ partition, offset }) => ({ partition, offset })) });
  } finally {
    await kafkaAdmin.disconnect();
  }
  await consumer.connect();
  await consumer.subscribe({ topics: [BENCH_TOPIC] });
  const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
  await consumer.run({
    eachBatch: async ({ batch }) => {
      const receivedAt = Date.now();
      for (const message of batch.messages) {
        const phase = message.headers?.['aggregate-type']?.toString();
        if (!phase) continue;
        const list = received.get(phase);
        if (!list) continue;
        list.push({ kafkaTimestamp: Number(message.timestamp), receivedAt, createdAt: Date.parse(message.headers!.timestamp!.toString()) });
      }
    },
  });
  await joined;
}

async function measureRelay(
  db: Kysely<SharedTables>,
  start: StartRelay,
  phase: { drain: string; steady: string },
  backlog: number,
  rate: number,
  seconds: number,
  received: Map<string, Received[]>,
  processes: Record<string, number>,
): Promise<RelayResult> {
  received.set(phase.drain, []);
  received.set(phase.steady, []);
  // Drain: the backlog is committed before the relay starts.
  await insertEvents(db, phase.drain, 0, backlog);
  let cpu = measureCpu(processes);
  const drainStarted = performance.now();
  const relay = await start();
  try {
    await waitUntil(async () => !(await anyPending(db)), 600_000, 'the backlog to drain');
    const drainSeconds = (performance.now() - drainStarted) / 1000;
    const drain: PhaseResult = { events: backlog, seconds: drainSeconds, eventsPerSecond: backlog / drainSeconds, cpu: cpu.stop() };
    await waitUntil(async () => received.get(phase.drain)!.length >= backlog, 60_000, 'the backlog to reach the consumer');

    // Steady: 10 rows per transaction every 10 ms, at `rate` events/s, for `seconds`.
    const total = Math.round(rate * seconds);
    cpu = measureCpu(processes);
    const steadyStarted = performance.now();
    let inserted = 0;
    while (inserted < total) {
      const due = Math.min(total, Math.floor(((performance.now() - steadyStarted) / 1000) * rate));
      while (inserted < due) {
        const rows = Math.min(10, due - inserted);
        await insertEvents(db, phase.steady, inserted, rows);
        inserted += rows;
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await waitUntil(async () => received.get(phase.steady)!.length >= total, 60_000 + (total / 100) * 1_000, 'the steady phase to reach the consumer');
    const steadySeconds = (performance.now() - steadyStarted) / 1000;
    const events = received.get(phase.steady)!;
    return {
      drain,
      steady: {
        events: total,
        seconds: steadySeconds,
        eventsPerSecond: total / steadySeconds,
        cpu: cpu.stop(),
        commitToKafka: latencySummary(events.map((e) => e.kafkaTimestamp - e.createdAt)),
        commitToConsumer: latencySummary(events.map((e) => e.receivedAt - e.createdAt)),
      },
    };
  } finally {
    await relay.stop();
  }
}

/** `count` rows shaped like a real event envelope, spread over AGGREGATES aggregates, committed in one statement. */
async function insertEvents(db: Kysely<SharedTables>, phase: string, from: number, count: number): Promise<void> {
  await sql`
    INSERT INTO outbox_events (event_id, aggregate_type, aggregate_id, event_type, payload, correlation_id)
    SELECT id, ${phase}::text, agg, ${BENCH_EVENT_TYPE}::text,
           jsonb_build_object('eventId', id, 'eventType', ${BENCH_EVENT_TYPE}::text, 'aggregateType', ${phase}::text, 'aggregateId', agg,
                              'timestamp', now(), 'version', 1, 'correlationId', agg,
                              'payload', jsonb_build_object('orderId', agg, 'items', jsonb_build_array(jsonb_build_object('productId', gen_random_uuid(), 'quantity', 1)))),
           agg
    FROM (SELECT gen_random_uuid() AS id, md5(${phase}::text || (n % ${AGGREGATES}::int)) AS agg
          FROM generate_series(${from}::int, ${from + count - 1}::int) AS n) AS rows`.execute(db);
}

/** `published` events already out, and the statistics taken then; autovacuum kept from taking new ones. */
async function afterQuietPeriod(db: Kysely<SharedTables>, published: number): Promise<void> {
  await sql`ALTER TABLE outbox_events SET (autovacuum_enabled = false)`.execute(db);
  await insertEvents(db, 'history', 0, published);
  await sql`UPDATE outbox_events SET status = 'PUBLISHED', published_at = now()`.execute(db);
  await sql`VACUUM ANALYZE outbox_events`.execute(db);
}

/** Whether any row is still PENDING: the first live entry of the pending index answers, where a count would read them all every 20 ms. */
async function anyPending(db: Kysely<SharedTables>): Promise<boolean> {
  const { rows } = await sql<{ pending: boolean }>`SELECT EXISTS (SELECT 1 FROM outbox_events WHERE status = 'PENDING') AS pending`.execute(db);
  return rows[0]!.pending;
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`outbox bench: gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Our relay: the real activity in a mock activity context, stopped by cancelling it. */
async function startOurRelay(db: Kysely<SharedTables>, url: string, options: OutboxBenchOptions): Promise<RelayUnderTest> {
  const activities = createOutboxRelayActivities({
    databases: { product: { db, listener: { connectionString: url } } },
    kafka: options.kafka,
    config: options.relayConfig,
    logger: pino({ level: 'info' }, destination('/dev/null')),
    metrics: createOutboxMetrics(new Registry()),
  });
  const environment = new MockActivityEnvironment({ heartbeatTimeoutMs: 30_000 });
  const running = environment.run(activities.relayOutboxEvents, { database: 'product' as const, runForMs: 60 * 60_000 }).catch(() => undefined);
  return {
    stop: async () => {
      environment.cancel();
      await running;
    },
  };
}

/**
 * The naive relay: every second, in one transaction, claim up to 100 PENDING rows, publish each and
 * wait for the broker's acknowledgement, mark each row PUBLISHED, commit.
 */
async function startNaiveRelay(pool: pg.Pool, producer: ReturnType<Kafka['producer']>): Promise<RelayUnderTest> {
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      await inTransaction(pool, async (client) => {
        const { rows } = await client.query<{
          id: string;
          event_id: string;
          aggregate_type: string;
          aggregate_id: string;
          event_type: string;
          payload: unknown;
          correlation_id: string | null;
          created_at: Date;
        }>(`SELECT * FROM outbox_events WHERE status = 'PENDING' ORDER BY created_at LIMIT 100 FOR UPDATE SKIP LOCKED`);
        for (const row of rows) {
          await producer.send({
            topic: topicForEventType(row.event_type),
            acks: -1,
            messages: [{ key: row.aggregate_id, value: JSON.stringify(row.payload), headers: eventHeaders(row) }],
          });
          await client.query(`UPDATE outbox_events SET status = 'PUBLISHED', published_at = now() WHERE id = $1`, [row.id]);
        }
      });
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
  })();
  // A failure surfaces when the bench stops it, not as an unhandled rejection meanwhile.
  loop.catch(() => undefined);
  return {
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

export function formatOutboxResult(result: OutboxBenchResult): string[] {
  const lines: string[] = [];
  for (const [label, relay] of [['ours', result.ours], ['naive (poll 1 s, 100 per batch, one event at a time)', result.naive]] as const) {
    lines.push(`relay: ${label}`);
    lines.push(`  drain   ${relay.drain.events} events in ${relay.drain.seconds.toFixed(2)} s: ${relay.drain.eventsPerSecond.toFixed(0)} events/s`);
    lines.push(...formatCpu(relay.drain.cpu, { count: relay.drain.events / 1000, unit: '1,000 events' }));
    lines.push(`  steady  ${relay.steady.events} events offered at the given rate, all consumed after ${relay.steady.seconds.toFixed(1)} s`);
    lines.push(formatLatency('  commit -> Kafka', relay.steady.commitToKafka));
    lines.push(formatLatency('  commit -> consumer', relay.steady.commitToConsumer));
    lines.push(...formatCpu(relay.steady.cpu, { count: relay.steady.events / 1000, unit: '1,000 events' }));
  }
  lines.push(
    `ratio ours / naive: drain ${(result.ours.drain.eventsPerSecond / result.naive.drain.eventsPerSecond).toFixed(1)}x events/s; ` +
      `commit -> Kafka p95 ${(result.naive.steady.commitToKafka.p95 / result.ours.steady.commitToKafka.p95).toFixed(1)}x lower`,
  );
  return lines;
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      backlog: { type: 'string', default: '20000' },
      rate: { type: 'string', default: '1000' },
      seconds: { type: 'string', default: '20' },
      'naive-backlog': { type: 'string', default: '2000' },
      'naive-seconds': { type: 'string', default: '3' },
      'batch-size': { type: 'string' },
    },
  });
  const config = loadConfig();
  const numbers = {
    backlog: Number(values.backlog),
    rate: Number(values.rate),
    seconds: Number(values.seconds),
    naiveBacklog: Number(values['naive-backlog']),
    naiveSeconds: Number(values['naive-seconds']),
  };
  const batchSize = Number(values['batch-size'] ?? config.OUTBOX_BATCH_SIZE);
  if ([...Object.values(numbers), batchSize].some((n) => !Number.isInteger(n) || n < 1 || n > 10_000_000)) {
    console.error('usage: ./oms bench outbox [--backlog N] [--rate R] [--seconds S] [--naive-backlog N] [--naive-seconds S] [--batch-size B] (positive integers)');
    process.exit(2);
  }
  console.log(`Outbox bench on ${machineLine()}; topic ${BENCH_TOPIC} (${TOPICS.generalEvents === BENCH_TOPIC ? 'general events' : 'routed'})`);
  console.log(
    `  ours: backlog ${numbers.backlog}, steady ${numbers.rate}/s for ${numbers.seconds} s, batch ${batchSize}; naive: backlog ${numbers.naiveBacklog}, steady ${numbers.rate}/s for ${numbers.naiveSeconds} s`,
  );
  const result = await runOutboxBench({
    adminUrl: config.DATABASE_ADMIN_URL,
    kafka: createKafka(config, 'oms-bench-outbox'),
    ...numbers,
    relayConfig: { ...config, OUTBOX_BATCH_SIZE: batchSize },
    processes: { ...stackProcesses(['postgres', 'kafka']), 'bench (relay + load)': process.pid },
  });
  for (const line of formatOutboxResult(result)) console.log(line);
  process.exit(0);
}
