/**
 * The fault suite's own whole OMS: PostgreSQL, Redis, Kafka, the Temporal dev server, the three
 * services and the worker, started with the project's own scripts (infra/stack.sh, db/provision.ts,
 * infra/topics.ts, db/migrate.ts, infra/apps.sh) exactly as `./oms up` starts them, but in a state
 * directory of its own ($OMS_STATE_DIR/fault-stack) and with every port moved by
 * FAULT_STACK_PORT_SHIFT (default 10000) from the developer's. So the suite may SIGKILL any of its
 * processes, stop Kafka or Redis and restart PostgreSQL or Temporal without touching the stack the
 * developer works on. It starts from an empty state directory and `down` leaves no process behind.
 *
 * The participants are reached through fault proxies (test/helpers/fault-proxy.ts) that this
 * process runs: every app is told PRODUCT_SERVICE_URL and PAYMENT_SERVICE_URL are the proxies', so
 * a scenario can refuse, lose or delay TCC and refund calls without a fault hook in production code.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { loadDevSigningKey } from '../../infra/dev-auth';
import { loadConfig, type Config } from '../../lib/config';
import { buildWorkflowBundle } from '../../workers/workflow-bundle';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy';
import { eventually } from '../helpers/kafka-probe';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** The processes infra/stack.sh and infra/apps.sh run, by the names their pid files carry. */
export type InfraComponent = 'postgres' | 'redis' | 'kafka' | 'temporal';
export type App = 'order-service' | 'product-service' | 'payment-service' | 'worker';

/** The developer's ports as infra/lib.sh resolves them (variable or default), by variable. */
const BASE_PORTS = {
  OMS_PG_PORT: 5432,
  OMS_REDIS_PORT: 6379,
  OMS_KAFKA_PORT: 9092,
  OMS_KAFKA_CONTROLLER_PORT: 9093,
  OMS_TEMPORAL_PORT: 7233,
  OMS_TEMPORAL_UI_PORT: 8233,
  OMS_TEMPORAL_HTTP_PORT: 7243,
  OMS_TEMPORAL_METRICS_PORT: 7244,
  OMS_PROMETHEUS_PORT: 9090,
  PRODUCT_SERVICE_PORT: 8083,
  ORDER_SERVICE_PORT: 8084,
  PAYMENT_SERVICE_PORT: 8085,
  WORKER_METRICS_PORT: 9464,
  WORKER_APP_METRICS_PORT: 9465,
} as const;
type PortName = keyof typeof BASE_PORTS;

/** A second worker (the two-workers scenario) takes the first one's metrics ports plus this. */
const SECOND_WORKER_PORT_OFFSET = 10;

/**
 * Settings of the private stack beyond ports: faster supervision and retry ceilings than the
 * defaults, so that recovery after a fault takes seconds rather than minutes of a test's time. The
 * behaviour is the production code's; only its intervals are shorter.
 */
const RECOVERY_SETTINGS = {
  SUPERVISION_INTERVAL_MS: '2000',
  CONSUMER_STALL_RESTART_MS: '60000',
  OUTBOX_RETRY_MAX_MS: '2000',
  SAGA_STARTER_RETRY_MAX_MS: '2000',
  LOG_LEVEL: 'info',
  NODE_ENV: 'development',
} as const;

/** Variables of the developer's shell that must not leak into the private stack's processes. */
const NOT_INHERITED = [
  /^OMS_/,
  /^AUTH_/,
  /_DATABASE_URL$/,
  /^DATABASE_ADMIN_URL$/,
  /^PG_ADMIN_URL$/,
  /^REDIS_URL$/,
  /^KAFKA_/,
  /^TEMPORAL_/,
  /_SERVICE_(URL|PORT)$/,
  /^WORKER_/,
  /^VITEST/,
  /^NODE_ENV$/,
];

export interface PrivateStack {
  /** The environment every process of this stack runs with (its ports, URLs and state directory). */
  env: Record<string, string>;
  config: Config;
  stateDir: string;
  productProxy: FaultProxy;
  paymentProxy: FaultProxy;
  /** Signs a development token for a customer or an operator, with the key this stack trusts. */
  signingKey: () => ReturnType<typeof loadDevSigningKey>;
  /**
   * SIGKILL, as a crash or an OOM kill would: no shutdown hook runs. Resolves with the pid it killed
   * once that process is gone (a signal is delivered asynchronously: until the kernel has closed its
   * sockets, a restart would find its ports still taken).
   */
  crash: (name: InfraComponent | App) => Promise<number>;
  /** `bash infra/stack.sh ACTION NAME` or `bash infra/apps.sh ACTION NAME` with this stack's environment. */
  infra: (action: 'start' | 'stop' | 'restart', name: InfraComponent) => Promise<void>;
  apps: (action: 'start' | 'stop' | 'restart', name: App) => Promise<void>;
  /** A second worker process (workers/main.ts) on the same task queues; resolves once it polls. */
  startSecondWorker: () => Promise<void>;
  stopSecondWorker: () => Promise<void>;
  /** pg_terminate_backend on every session of the three service databases; the number ended. */
  terminateDatabaseSessions: () => Promise<number>;
  /** Stops every process of this stack (also after a failed start); safe to call twice. */
  down: () => Promise<void>;
}

function basePort(name: PortName): number {
  const raw = process.env[name];
  return raw ? Number(raw) : BASE_PORTS[name];
}

/** Runs a command of the repository with the stack's environment; its output is kept for the error. */
async function runInRepo(env: Record<string, string>, command: string, args: string[], timeoutMs = 300_000): Promise<string> {
  try {
    const { stdout, stderr } = await run(command, args, { cwd: REPO, env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
    return stdout + stderr;
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${failed.message}\n${failed.stdout ?? ''}${failed.stderr ?? ''}`);
  }
}

const tsx = (env: Record<string, string>, script: string) => runInRepo(env, 'npx', ['--no-install', 'tsx', script]);

function readPid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim().split('\n')[0]);
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    // A zombie (killed, not yet reaped by pid 1) is not alive: its state is Z.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

/** The environment of a stack whose ports are the developer's moved by `shift`, in `stateDir`. */
function stackEnvironment(stateDir: string, shift: number, proxies: { product: string; payment: string }, bundlePath: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !NOT_INHERITED.some((pattern) => pattern.test(name))) env[name] = value;
  }
  const ports = Object.fromEntries(Object.keys(BASE_PORTS).map((name) => [name, basePort(name as PortName) + shift])) as Record<PortName, number>;
  for (const [name, port] of Object.entries(ports)) env[name] = String(port);
  const pg = `127.0.0.1:${ports.OMS_PG_PORT}`;
  Object.assign(env, {
    OMS_STATE_DIR: stateDir,
    OMS_WORKFLOW_BUNDLE: bundlePath,
    DATABASE_ADMIN_URL: `postgres://postgres@localhost/postgres?host=/tmp&port=${ports.OMS_PG_PORT}`,
    ORDER_DATABASE_URL: `postgres://oms_order:oms-dev-order@${pg}/order_db`,
    PRODUCT_DATABASE_URL: `postgres://oms_product:oms-dev-product@${pg}/product_db`,
    PAYMENT_DATABASE_URL: `postgres://oms_payment:oms-dev-payment@${pg}/payment_db`,
    WORKER_ORDER_DATABASE_URL: `postgres://oms_worker:oms-dev-worker@${pg}/order_db`,
    WORKER_PRODUCT_DATABASE_URL: `postgres://oms_worker:oms-dev-worker@${pg}/product_db`,
    WORKER_PAYMENT_DATABASE_URL: `postgres://oms_worker:oms-dev-worker@${pg}/payment_db`,
    REDIS_URL: `redis://127.0.0.1:${ports.OMS_REDIS_PORT}`,
    KAFKA_BROKERS: `127.0.0.1:${ports.OMS_KAFKA_PORT}`,
    TEMPORAL_ADDRESS: `127.0.0.1:${ports.OMS_TEMPORAL_PORT}`,
    TEMPORAL_UI_URL: `http://127.0.0.1:${ports.OMS_TEMPORAL_UI_PORT}`,
    ORDER_SERVICE_URL: `http://127.0.0.1:${ports.ORDER_SERVICE_PORT}`,
    PRODUCT_SERVICE_URL: proxies.product,
    PAYMENT_SERVICE_URL: proxies.payment,
    ...RECOVERY_SETTINGS,
  });
  return env;
}

/**
 * Brings the whole private stack up from an empty state directory; on any failure it stops what
 * it started before rethrowing.
 */
export async function startPrivateStack(): Promise<PrivateStack> {
  const shift = Number(process.env.FAULT_STACK_PORT_SHIFT ?? 10_000);
  const stateDir = join(process.env.OMS_STATE_DIR ?? join(REPO, '.oms'), 'fault-stack');
  const runDir = join(stateDir, 'run');
  const logDir = join(stateDir, 'logs');

  // The proxies must exist before the apps start: their addresses are the apps' participant URLs.
  const productPort = basePort('PRODUCT_SERVICE_PORT') + shift;
  const paymentPort = basePort('PAYMENT_SERVICE_PORT') + shift;
  const productProxy = await startFaultProxy(`http://127.0.0.1:${productPort}`);
  const paymentProxy = await startFaultProxy(`http://127.0.0.1:${paymentPort}`);

  // One workflow bundle for every start of the worker: a restart after a SIGKILL then takes seconds.
  const bundleDir = mkdtempSync(join(tmpdir(), 'oms-fault-stack-'));
  const bundlePath = join(bundleDir, 'workflow-bundle.js');
  writeFileSync(bundlePath, (await buildWorkflowBundle()).code);

  const env = stackEnvironment(stateDir, shift, { product: productProxy.url, payment: paymentProxy.url }, bundlePath);
  const config = loadConfig(env);
  const script = (name: 'stack' | 'apps', action: string, component?: string) =>
    runInRepo(env, 'bash', [join(REPO, `infra/${name}.sh`), action, ...(component ? [component] : [])]).then(() => undefined);

  /** Every pid this stack recorded (apps, infra, the second worker), for the last sweep of `down`. */
  const recordedPids = () => (existsSync(runDir) ? readdirSync(runDir).filter((file) => file.endsWith('.pid')).map((file) => readPid(join(runDir, file))) : []);

  let downCalled = false;
  const down = async () => {
    if (downCalled) return;
    downCalled = true;
    const errors: unknown[] = [];
    if (existsSync(stateDir)) {
      await script('apps', 'stop').catch((error: unknown) => errors.push(error));
      await script('stack', 'stop').catch((error: unknown) => errors.push(error));
      // What the scripts do not know (the second worker) or could not stop.
      for (const pid of recordedPids()) if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGKILL');
    }
    await Promise.allSettled([productProxy.close(), paymentProxy.close()]);
    rmSync(bundleDir, { recursive: true, force: true });
    if (errors.length > 0) throw new AggregateError(errors, 'the fault suite could not stop its private stack cleanly');
  };

  // A run that died without its teardown left processes and data behind: stop them, start empty.
  if (existsSync(stateDir)) {
    await script('apps', 'stop').catch(() => undefined);
    await script('stack', 'stop').catch(() => undefined);
    for (const pid of recordedPids()) if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(stateDir, { recursive: true, force: true, maxRetries: 5 });
  }

  let secondWorker: number | undefined;
  const stack: PrivateStack = {
    env,
    config,
    stateDir,
    productProxy,
    paymentProxy,
    signingKey: () => loadDevSigningKey(stateDir),
    crash: async (name) => {
      const pid = name === 'postgres' ? readPid(join(stateDir, 'postgres', 'postmaster.pid')) : readPid(join(runDir, `${name}.pid`));
      if (pid === undefined || !alive(pid)) throw new Error(`${name} is not running (no live pid)`);
      process.kill(pid, 'SIGKILL');
      await eventually(() => (alive(pid) ? undefined : true), 30_000, `${name} (pid ${pid}) to be gone after SIGKILL`, 50);
      return pid;
    },
    infra: (action, name) => script('stack', action, name),
    apps: (action, name) => script('apps', action, name),
    startSecondWorker: async () => {
      const log = join(logDir, 'worker-2.log');
      const child = spawn(process.execPath, ['--import', 'tsx', 'workers/main.ts'], {
        cwd: REPO,
        env: {
          ...env,
          WORKER_METRICS_PORT: String(config.WORKER_METRICS_PORT + SECOND_WORKER_PORT_OFFSET),
          WORKER_APP_METRICS_PORT: String(config.WORKER_APP_METRICS_PORT + SECOND_WORKER_PORT_OFFSET),
        },
        detached: true,
        stdio: ['ignore', openSync(log, 'w'), openSync(log, 'a')],
      });
      child.unref();
      secondWorker = child.pid!;
      writeFileSync(join(runDir, 'worker-2.pid'), `${secondWorker}\n`);
      await eventually(
        () => {
          if (!alive(secondWorker!)) throw new Error(`the second worker exited during start-up; see ${log}`);
          return readFileSync(log, 'utf8').includes('worker started') ? true : undefined;
        },
        180_000,
        'the second worker to poll',
        500,
      );
    },
    stopSecondWorker: async () => {
      if (secondWorker === undefined) return;
      const pid = secondWorker;
      secondWorker = undefined;
      if (alive(pid)) process.kill(pid, 'SIGTERM');
      await eventually(() => (alive(pid) ? undefined : true), 60_000, 'the second worker to stop', 200).catch(() => {
        if (alive(pid)) process.kill(pid, 'SIGKILL');
      });
      rmSync(join(runDir, 'worker-2.pid'), { force: true });
    },
    terminateDatabaseSessions: async () => {
      const output = await runInRepo(env, 'psql', [
        '-X',
        '-q',
        '-At',
        '-h',
        '/tmp',
        '-p',
        env.OMS_PG_PORT!,
        '-U',
        'postgres',
        '-d',
        'postgres',
        '-c',
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname IN ('order_db', 'product_db', 'payment_db') AND pid <> pg_backend_pid()",
      ]);
      return Number(output.trim());
    },
    down,
  };

  try {
    mkdirSync(runDir, { recursive: true });
    await script('stack', 'start');
    // What `./oms up` does between the infrastructure and the apps (see bring_up_infra in ./oms).
    await tsx(env, 'db/provision.ts');
    await tsx(env, 'infra/topics.ts');
    await tsx(env, 'db/migrate.ts');
    await script('apps', 'start');
  } catch (error) {
    await down().catch(() => undefined);
    throw error;
  }
  return stack;
}
