/**
 * The fault suite's results table (test/faults/reliability-report.ts), which the full run writes
 * into docs/reliability.md: one row per fault with its seeds summed, and "lost" saying nothing only
 * when every order ended as expected and the checker found no violation.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { REPORT_BEGIN, REPORT_END, resultsTable, type ScenarioResult } from '../faults/reliability-report';

const run = (overrides: Partial<ScenarioResult>): ScenarioResult => ({
  fault: 'SIGKILL the worker',
  seed: 1,
  orders: 12,
  inFlightAtFault: 3,
  statuses: { PAID: 12 },
  clientRetries: 0,
  violations: [],
  unfinished: 0,
  passed: true,
  ...overrides,
});

describe('fault suite results table', () => {
  it('sums the seeds of one fault into one row that lost nothing', () => {
    const table = resultsTable([run({ seed: 1 }), run({ seed: 2, inFlightAtFault: 4, clientRetries: 5 })]);
    expect(table.split('\n')).toEqual([
      '| fault injected | load held | outcome | lost |',
      '|---|---|---|---|',
      '| SIGKILL the worker | 24 orders via POST /orders (2 runs, seeds 1, 2); 7 in flight at the fault | passed: 24 PAID; clients retried 5 request(s) | nothing |',
    ]);
  });

  it('says what was lost when an order did not end as expected or an invariant was violated', () => {
    const table = resultsTable([
      run({
        fault: 'Kafka stopped',
        statuses: { PAID: 11, PENDING: 1 },
        unfinished: 1,
        violations: [{ check: 'outbox-delivered', subject: 'order_db', detail: '1 event(s) neither published nor dead-lettered' }],
        passed: false,
      }),
    ]);
    expect(table).toContain('| Kafka stopped |');
    expect(table).toContain('**FAILED**: 11 PAID, 1 PENDING');
    expect(table).toContain('| 1 order(s) not at their expected end; 1 violation(s): outbox-delivered |');
  });

  it('has its markers in docs/reliability.md, where the full run writes it', () => {
    const document = readFileSync(new URL('../../docs/reliability.md', import.meta.url), 'utf8');
    expect(document.indexOf(REPORT_BEGIN)).toBeGreaterThan(0);
    expect(document.indexOf(REPORT_END)).toBeGreaterThan(document.indexOf(REPORT_BEGIN));
  });
});
