/**
 * `./oms check [--wait SECONDS] [--grace SECONDS] [--saga-bound SECONDS] [--json]`: reads the three
 * databases, Kafka and Temporal and lists every violated invariant (infra/ops/invariants.ts says
 * which). Exits 0 when nothing is violated, 1 otherwise. `--wait` re-checks until the system has
 * settled (or the time is up), for use right after a fault or a load test.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../../lib/config';
import { checkInvariantsSettled, connectInvariantSources } from './invariants';

const USAGE = 'usage: ./oms check [--wait SECONDS] [--grace SECONDS] [--saga-bound SECONDS] [--json]';

function seconds(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0) throw new Error(`--${name} must be a whole number of seconds\n${USAGE}`);
  return parsed;
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { wait: { type: 'string' }, grace: { type: 'string' }, 'saga-bound': { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  const config = loadConfig();
  const { sources, close } = await connectInvariantSources(config, {
    graceSeconds: seconds(values.grace, 'grace', 60),
    // A manual checkout may hold for CHECKOUT_HOLD_TTL_SECONDS; ten more minutes for its steps.
    sagaBoundSeconds: seconds(values['saga-bound'], 'saga-bound', config.CHECKOUT_HOLD_TTL_SECONDS + 600),
  });
  try {
    const violations = await checkInvariantsSettled(sources, seconds(values.wait, 'wait', 0));
    if (values.json) {
      console.log(JSON.stringify({ ok: violations.length === 0, violations }, null, 2));
    } else if (violations.length === 0) {
      console.log('OK: every invariant holds (stock, money, orders, outbox, timeline, consumer, sagas)');
    } else {
      for (const violation of violations) console.log(`${violation.check.padEnd(20)} ${violation.subject}: ${violation.detail}`);
      console.log(`${violations.length} violation(s)`);
    }
    return violations.length === 0 ? 0 : 1;
  } finally {
    await close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 2;
  },
);
