/**
 * CPU used by each process of the stack while a scenario runs (what `pidstat` would show), read from
 * /proc: the pid files `./oms up` wrote under $OMS_STATE_DIR/run, plus the bench process itself. It
 * says what saturates: the Temporal server, the worker, a service, PostgreSQL or the load.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ): 100 on every Linux this runs on. */
const TICKS_PER_SECOND = 100;

interface Sample {
  at: number;
  ticks: Map<string, number>;
}

function stackProcesses(runDir: string): Map<string, number> {
  const pids = new Map<string, number>([['bench (load + engine workers)', process.pid]]);
  let files: string[] = [];
  try {
    files = readdirSync(runDir).filter((file) => file.endsWith('.pid'));
  } catch {
    // No stack started by ./oms here: only the bench itself is measured.
  }
  for (const file of files) {
    const pid = Number(readFileSync(join(runDir, file), 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0) pids.set(file.replace(/\.pid$/, ''), pid);
  }
  return pids;
}

/** utime + stime of a process and its children it waited for (PostgreSQL's backends are its children). */
function cpuTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields after "(comm) ": state is [0]; utime [11], stime [12], cutime [13], cstime [14].
    return [11, 12, 13, 14].reduce((sum, index) => sum + Number(fields[index]), 0);
  } catch {
    return undefined;
  }
}

/** Ticks of a process plus all its live descendants (PostgreSQL, Kafka's JVM threads are one pid). */
function treeTicks(root: number): number {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(parent, [...(children.get(parent) ?? []), pid]);
    } catch {
      // The process ended while we listed /proc.
    }
  }
  let total = 0;
  const pending = [root];
  for (let pid = pending.pop(); pid !== undefined; pid = pending.pop()) {
    total += cpuTicks(pid) ?? 0;
    pending.push(...(children.get(pid) ?? []));
  }
  return total;
}

export function sampleCpu(runDir: string): Sample {
  const ticks = new Map<string, number>();
  for (const [name, pid] of stackProcesses(runDir)) ticks.set(name, name.startsWith('bench') ? (cpuTicks(pid) ?? 0) : treeTicks(pid));
  return { at: performance.now(), ticks };
}

/** "% of one core" per process between two samples, busiest first. */
export function cpuBetween(before: Sample, after: Sample): { name: string; percentOfCore: number }[] {
  const seconds = (after.at - before.at) / 1000;
  return [...after.ticks]
    .map(([name, ticks]) => ({ name, percentOfCore: (100 * (ticks - (before.ticks.get(name) ?? ticks))) / TICKS_PER_SECOND / seconds }))
    .filter(({ percentOfCore }) => percentOfCore >= 0.5)
    .sort((a, b) => b.percentOfCore - a.percentOfCore);
}
