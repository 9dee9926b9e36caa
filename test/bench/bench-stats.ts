/**
 * What the hot-path benchmarks (tcc-bench.ts, outbox-bench.ts, floor-bench.ts) share: latency
 * percentiles, the CPU each process of the stack used during a run (from /proc, the way pidstat
 * counts it), so a printed result says which process bounds it, and a plain node-postgres
 * transaction for the code that is measured without OMS's own database layer.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';

export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export function latencySummary(samplesMs: readonly number[]): LatencySummary {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  return { count: sorted.length, p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99), max: sorted.at(-1) ?? NaN };
}

export function formatLatency(label: string, summary: LatencySummary): string {
  const f = (n: number) => `${n.toFixed(1)} ms`;
  return `${label.padEnd(34)} p50 ${f(summary.p50)}  p95 ${f(summary.p95)}  p99 ${f(summary.p99)}  max ${f(summary.max)}  (n=${summary.count})`;
}

export function machineLine(): string {
  return `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.versions.node}`;
}

/** Kernel clock ticks per second (USER_HZ): 100 on every Linux we run on. */
const TICKS_PER_SECOND = 100;

/**
 * CPU ticks of every process, and who its parent is. Empty off Linux. A process's ticks include
 * those of its children that ended (cutime + cstime, added when it reaps them): a PostgreSQL
 * backend that exits mid-measurement (a pool closing an idle connection) would otherwise take its
 * whole life's CPU out of the sum, and a phase could show less CPU than it used, even none.
 */
function processTable(): Map<number, { ppid: number; ticks: number }> {
  const table = new Map<number, { ppid: number; ticks: number }>();
  if (!existsSync('/proc/self/stat')) return table;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name may hold spaces: the fields after it start past the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      table.set(Number(entry), { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]) });
    } catch {
      // The process ended while we looked.
    }
  }
  return table;
}

/** CPU seconds used so far by `pid` and all its descendants (a PostgreSQL postmaster and its backends, npx and its node). */
function treeCpuSeconds(table: Map<number, { ppid: number; ticks: number }>, pid: number): number {
  let ticks = 0;
  const stack = [pid];
  const children = new Map<number, number[]>();
  for (const [child, { ppid }] of table) children.set(ppid, [...(children.get(ppid) ?? []), child]);
  while (stack.length > 0) {
    const current = stack.pop()!;
    ticks += table.get(current)?.ticks ?? 0;
    stack.push(...(children.get(current) ?? []));
  }
  return ticks / TICKS_PER_SECOND;
}

export interface CpuSample {
  name: string;
  /** Share of one core over the measured interval, in percent. */
  percentOfCore: number;
  cpuSeconds: number;
}

/**
 * Starts measuring the CPU of named processes (name -> pid); `stop()` returns each one's use over
 * the interval. The stack's processes are read from its pid files (`$OMS_STATE_DIR/run/*.pid`) by
 * stackProcesses(); `self` is this process.
 */
export function measureCpu(processes: Record<string, number>): { stop: () => CpuSample[] } {
  const before = processTable();
  const startedAt = performance.now();
  const start = Object.fromEntries(Object.entries(processes).map(([name, pid]) => [name, treeCpuSeconds(before, pid)]));
  return {
    stop: () => {
      const after = processTable();
      const seconds = (performance.now() - startedAt) / 1000;
      return Object.entries(processes).map(([name, pid]) => {
        const cpuSeconds = Math.max(0, treeCpuSeconds(after, pid) - (start[name] ?? 0));
        return { name, cpuSeconds, percentOfCore: (100 * cpuSeconds) / seconds };
      });
    },
  };
}

/** The running stack's processes by name, from the pid files `./oms up` writes; missing ones are left out. */
export function stackProcesses(names: readonly string[]): Record<string, number> {
  const runDir = join(process.env.OMS_STATE_DIR ?? '.oms', 'run');
  const found: Record<string, number> = {};
  for (const name of names) {
    try {
      const pid = Number(readFileSync(join(runDir, `${name}.pid`), 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0) found[name] = pid;
    } catch {
      // Not running under ./oms up: that process's CPU is not reported.
    }
  }
  return found;
}

export function formatCpu(samples: readonly CpuSample[], perUnit?: { count: number; unit: string }): string[] {
  return samples.map(({ name, cpuSeconds, percentOfCore }) => {
    const per = perUnit && perUnit.count > 0 ? `  ${((1000 * cpuSeconds) / perUnit.count).toFixed(2)} ms CPU per ${perUnit.unit}` : '';
    return `  cpu ${name.padEnd(18)} ${percentOfCore.toFixed(0).padStart(4)}% of a core${per}`;
  });
}

/** True when this module was started as the program (`tsx test/bench/x.ts`), not imported by a test. */
export function isMain(moduleUrl: string): boolean {
  return process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(moduleUrl);
}

/** `work` on one pooled connection between BEGIN and COMMIT; ROLLBACK and rethrow if it throws. */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}
