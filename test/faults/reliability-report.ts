/**
 * The fault suite's results table in docs/reliability.md: every scenario of a run records what it
 * injected, the load it held, how the orders ended and what the invariant checker found, and the
 * full run (`./oms test faults`) rewrites the section between the two markers below from them.
 * Nothing else in the document is touched; a short run leaves it alone.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Violation } from '../../infra/ops/invariants';

export const REPORT_BEGIN = '<!-- fault-suite results: begin (written by ./oms test faults; do not edit by hand) -->';
export const REPORT_END = '<!-- fault-suite results: end -->';
const DOCUMENT = fileURLToPath(new URL('../../docs/reliability.md', import.meta.url));

export interface ScenarioResult {
  /** The fault, as the table names it. */
  fault: string;
  seed: number;
  orders: number;
  /** Orders accepted but not yet at an end state when the fault hit. */
  inFlightAtFault: number;
  statuses: Record<string, number>;
  /** Requests the clients had to send again (5xx or no answer) before they were answered. */
  clientRetries: number;
  violations: Violation[];
  /** Orders that never reached the end state the scenario expects. */
  unfinished: number;
  passed: boolean;
}

const results: ScenarioResult[] = [];

export function recordResult(result: ScenarioResult): void {
  results.push(result);
}

const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);

function statusesText(runs: ScenarioResult[]): string {
  const counts: Record<string, number> = {};
  for (const run of runs) for (const [status, count] of Object.entries(run.statuses)) counts[status] = (counts[status] ?? 0) + count;
  return Object.entries(counts)
    .map(([status, count]) => `${count} ${status}`)
    .join(', ');
}

function lostText(runs: ScenarioResult[]): string {
  const violations = runs.flatMap((run) => run.violations);
  const unfinished = sum(runs.map((run) => run.unfinished));
  if (violations.length === 0 && unfinished === 0) return 'nothing';
  const checks = [...new Set(violations.map((violation) => violation.check))].join(', ');
  return [unfinished > 0 ? `${unfinished} order(s) not at their expected end` : '', violations.length > 0 ? `${violations.length} violation(s): ${checks}` : '']
    .filter(Boolean)
    .join('; ');
}

/** The Markdown table of the recorded results, one row per fault (its seeds summed). */
export function resultsTable(recorded: readonly ScenarioResult[] = results): string {
  const faults = [...new Set(recorded.map((result) => result.fault))];
  const rows = faults.map((fault) => {
    const runs = recorded.filter((result) => result.fault === fault);
    const seeds = runs.map((run) => run.seed);
    const load = `${sum(runs.map((run) => run.orders))} orders via POST /orders (${runs.length} run${runs.length > 1 ? 's' : ''}, seed${seeds.length > 1 ? 's' : ''} ${seeds.join(', ')}); ${sum(runs.map((run) => run.inFlightAtFault))} in flight at the fault`;
    const outcome = `${runs.every((run) => run.passed) ? 'passed' : '**FAILED**'}: ${statusesText(runs)}; clients retried ${sum(runs.map((run) => run.clientRetries))} request(s)`;
    return `| ${fault} | ${load} | ${outcome} | ${lostText(runs)} |`;
  });
  return ['| fault injected | load held | outcome | lost |', '|---|---|---|---|', ...rows].join('\n');
}

/** Rewrites the marked section of docs/reliability.md with this run's table. */
export function writeResultsSection(when: Date, command: string): void {
  if (results.length === 0) return;
  const document = readFileSync(DOCUMENT, 'utf8');
  const begin = document.indexOf(REPORT_BEGIN);
  const end = document.indexOf(REPORT_END);
  if (begin < 0 || end < begin) throw new Error(`docs/reliability.md has lost its markers (${REPORT_BEGIN} ... ${REPORT_END})`);
  const section = [REPORT_BEGIN, '', `Last full run: ${when.toISOString().slice(0, 16).replace('T', ' ')} UTC, \`${command}\`.`, '', resultsTable(), '', REPORT_END].join('\n');
  writeFileSync(DOCUMENT, document.slice(0, begin) + section + document.slice(end + REPORT_END.length));
}
