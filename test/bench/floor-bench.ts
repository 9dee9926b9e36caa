/**
 * `./oms bench floor [--requests N] [--connections C]`: the floor of this stack on this machine,
 * the CPU that the cheapest request of each kind costs with the libraries OMS is built on and
 * nothing of OMS in it (floor-server.ts: a bare Fastify app on node-postgres and kafkajs, in a
 * process of its own, on a scratch database and a scratch topic of the stack's Kafka):
 *
 *   http         a POST answered with a constant body
 *   statement    a POST that runs one INSERT (its own transaction)
 *   transaction  a POST that inserts a row and an event row in one transaction (BEGIN ... COMMIT)
 *   event        a POST that publishes one Kafka message and waits for every in-sync replica
 *
 * The load generator sends through undici's pool, as the saga worker's client does. The other
 * scenarios' costs per cycle, order or saga are read against these: a TCC cycle is at least four
 * transactions and four events, whatever the code around them does (docs/benchmarks.md, "The floor").
 */
import { fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Pool } from 'undici';
import { loadConfig } from '../../lib/config';
import { createKafka, createTopicsWithLeaders, kafkaConnectionConfig, type KafkaConnectionConfig } from '../../lib/kafka';
import { isMain, latencySummary, machineLine, measureCpu, stackProcesses, type CpuSample, type LatencySummary } from './bench-stats';

export const FLOOR_KINDS = ['http', 'statement', 'transaction', 'event'] as const;
export type FloorKind = (typeof FLOOR_KINDS)[number];

/** What floor-server.ts gets over IPC before it listens. */
export interface FloorServerSetup {
  /** The scratch database, already holding floor_rows and floor_outbox. */
  databaseUrl: string;
  /** Connections of the server's pool: as many as the load generator keeps in flight. */
  poolSize: number;
  kafka: KafkaConnectionConfig;
  topic: string;
}

export interface FloorBenchOptions {
  /** An administrator's URL: the scratch database is created and dropped through it. */
  adminUrl: string;
  kafka: KafkaConnectionConfig;
  /** Measured requests of each kind (after a warm-up of a tenth as many, at least 50). */
  requests: number;
  /** Connections kept busy by the load generator, and the server's pool size. */
  connections: number;
  /** Processes of the stack whose CPU is counted too (PostgreSQL, Kafka): name -> pid. */
  processes?: Record<string, number>;
}

export interface FloorKindResult {
  kind: FloorKind;
  requests: number;
  requestsPerSecond: number;
  latency: LatencySummary;
  /** Load generator, floor server, and the stack processes given. */
  cpu: CpuSample[];
}

export interface FloorBenchResult {
  kinds: FloorKindResult[];
  /** What the server wrote, counted after the run: proof that every request did its work. */
  written: { rows: number; eventRows: number; messages: number };
}

const SERVER_PATH = fileURLToPath(new URL('./floor-server.ts', import.meta.url));

export async function runFloorBench(options: FloorBenchOptions): Promise<FloorBenchResult> {
  const runId = randomUUID().slice(0, 8);
  const database = `oms_bench_floor_${runId}`;
  const topic = `oms-bench-floor-${runId}`;
  const warmUp = Math.max(50, Math.ceil(options.requests / 10));
  const admin = new pg.Client({ connectionString: options.adminUrl });
  await admin.connect();
  const kafkaAdmin = createKafka(options.kafka, 'oms-bench-floor-admin').admin();
  await kafkaAdmin.connect();
  let scratch: pg.Client | undefined;
  let server: ReturnType<typeof fork> | undefined;
  let http: Pool | undefined;
  try {
    await admin.query(`CREATE DATABASE ${database}`);
    const url = new URL(options.adminUrl);
    url.pathname = `/${database}`;
    scratch = new pg.Client({ connectionString: url.toString() });
    await scratch.connect();
    await scratch.query(`CREATE TABLE floor_rows (id uuid PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now());
      CREATE TABLE floor_outbox (id bigserial PRIMARY KEY, aggregate_id uuid NOT NULL, payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`);
    await createTopicsWithLeaders(kafkaAdmin, [{ topic, numPartitions: 1 }]);

    server = fork(SERVER_PATH, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const setup: FloorServerSetup = { databaseUrl: url.toString(), poolSize: options.connections, kafka: kafkaConnectionConfig(options.kafka), topic };
    const port = await serverPort(server, setup);
    const serverPid = server.pid!;
    http = new Pool(`http://127.0.0.1:${port}`, { connections: options.connections });

    const kinds: FloorKindResult[] = [];
    for (const kind of FLOOR_KINDS) await load(http, kind, warmUp, options.connections);
    for (const kind of FLOOR_KINDS) {
      // The server is this process's child, so /proc's tree of this process would count it twice: the
      // load generator's own CPU comes from process.cpuUsage().
      const cpu = measureCpu({ 'floor server': serverPid, ...options.processes });
      const ownBefore = process.cpuUsage();
      const startedAt = performance.now();
      const latencies = await load(http, kind, options.requests, options.connections);
      const seconds = (performance.now() - startedAt) / 1000;
      const own = process.cpuUsage(ownBefore);
      const ownSeconds = (own.user + own.system) / 1e6;
      const loadGenerator: CpuSample = { name: 'load generator', cpuSeconds: ownSeconds, percentOfCore: (100 * ownSeconds) / seconds };
      kinds.push({ kind, requests: options.requests, requestsPerSecond: options.requests / seconds, latency: latencySummary(latencies), cpu: [loadGenerator, ...cpu.stop()] });
    }

    const perKind = warmUp + options.requests;
    const counted = await scratch.query<{ rows: number; event_rows: number }>('SELECT (SELECT count(*) FROM floor_rows)::int AS rows, (SELECT count(*) FROM floor_outbox)::int AS event_rows');
    const [offsets] = await kafkaAdmin.fetchTopicOffsets(topic).then((partitions) => partitions.map((p) => Number(p.high) - Number(p.low)));
    const written = { rows: counted.rows[0]!.rows, eventRows: counted.rows[0]!.event_rows, messages: offsets ?? 0 };
    if (written.rows !== 2 * perKind || written.eventRows !== perKind || written.messages !== perKind) {
      throw new Error(`the floor server did not do every request's work: ${JSON.stringify(written)}, expected ${perKind} per kind`);
    }
    return { kinds, written };
  } finally {
    // Closed before the database is dropped: a connection ended by DROP ... WITH (FORCE) would raise an unhandled error.
    await scratch?.end().catch(() => undefined);
    await http?.close();
    if (server && server.exitCode === null) {
      const exited = new Promise((resolve) => server!.once('exit', resolve));
      server.kill('SIGTERM');
      await exited;
    }
    await kafkaAdmin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await kafkaAdmin.disconnect();
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.end();
  }
}

function serverPort(server: ReturnType<typeof fork>, setup: FloorServerSetup): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('message', (message: { port: number }) => resolve(message.port));
    server.once('exit', (code) => reject(new Error(`the floor server exited with ${code} before listening`)));
    server.send(setup);
  });
}

/** `count` POSTs of `kind`, `connections` at a time; each one's latency in ms. Any non-200 fails the run. */
async function load(http: Pool, kind: FloorKind, count: number, connections: number): Promise<number[]> {
  const latencies: number[] = [];
  let issued = 0;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (issued < count) {
        issued += 1;
        const startedAt = performance.now();
        const response = await http.request({ path: `/${kind}`, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: randomUUID() }) });
        const body = await response.body.text();
        if (response.statusCode !== 200) throw new Error(`POST /${kind} answered ${response.statusCode}: ${body}`);
        latencies.push(performance.now() - startedAt);
      }
    }),
  );
  return latencies;
}

export function formatFloorResult(result: FloorBenchResult, connections: number): string[] {
  const lines = [`${'kind'.padEnd(12)} ${'req/s'.padStart(7)}  ${'p50 / p95 / p99 ms'.padEnd(20)}  CPU per request, ms`];
  for (const { kind, requestsPerSecond, latency, cpu, requests } of result.kinds) {
    const perRequest = cpu.map(({ name, cpuSeconds }) => ({ name, ms: (1000 * cpuSeconds) / requests }));
    const total = perRequest.reduce((sum, { ms }) => sum + ms, 0);
    const percentiles = [latency.p50, latency.p95, latency.p99].map((ms) => ms.toFixed(1)).join(' / ');
    lines.push(`${kind.padEnd(12)} ${requestsPerSecond.toFixed(0).padStart(7)}  ${percentiles.padEnd(20)}  all ${total.toFixed(3)} = ${perRequest.map(({ name, ms }) => `${name} ${ms.toFixed(3)}`).join(', ')}`);
  }
  lines.push(`(${connections} connections; written and counted: ${result.written.rows} rows, ${result.written.eventRows} event rows, ${result.written.messages} Kafka messages)`);
  return lines;
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ options: { requests: { type: 'string', default: '10000' }, connections: { type: 'string', default: '20' } } });
  const requests = Number(values.requests);
  const connections = Number(values.connections);
  if (!Number.isInteger(requests) || requests < 1 || requests > 10_000_000 || !Number.isInteger(connections) || connections < 1 || connections > 500) {
    console.error('usage: ./oms bench floor [--requests 1..10000000] [--connections 1..500]');
    process.exit(2);
  }
  const config = loadConfig();
  console.log(`Floor bench on ${machineLine()}: ${requests} requests of each kind`);
  const result = await runFloorBench({ adminUrl: config.DATABASE_ADMIN_URL, kafka: config, requests, connections, processes: stackProcesses(['postgres', 'kafka']) });
  for (const line of formatFloorResult(result, connections)) console.log(line);
  process.exit(0);
}
