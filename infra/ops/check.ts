/**
 * `./oms check [--wait SECONDS] [--grace SECONDS] [--saga-bound SECONDS] [--json]`: reads the three
 * databases, Kafka and Temporal and lists every violated invariant (infra/ops/invariants.ts says
 * which). Exits 0 when nothing is violated, 1 otherwise. `--wait` re-checks until the system has
 * settled (or the time is up), for use right after a fault or a load test.
 */
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { openServiceDatabase } from '../../db/databases';
import { loadConfig } from '../../services/shared/config';
import { createKafka } from '../../services/shared/kafka';
import { temporalConnectionOptions } from '../../services/shared/temporal-connection';
import { ORDER_TIMELINE_GROUP, ORDER_TIMELINE_TOPICS } from '../../workers/order-events-consumer';
import { checkInvariantsSettled } from './invariants';

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
  const orderDb = openServiceDatabase(config, 'order', 'oms-check');
  const productDb = openServiceDatabase(config, 'product', 'oms-check');
  const paymentDb = openServiceDatabase(config, 'payment', 'oms-check');
  const kafka = createKafka(config, 'oms-check').admin();
  const connection = await Connection.connect(temporalConnectionOptions(config));
  try {
    await kafka.connect();
    const violations = await checkInvariantsSettled(
      {
        orderDb,
        productDb,
        paymentDb,
        kafka,
        temporal: new Client({ connection, namespace: config.TEMPORAL_NAMESPACE }),
        timeline: { groupId: ORDER_TIMELINE_GROUP, topics: ORDER_TIMELINE_TOPICS },
        graceSeconds: seconds(values.grace, 'grace', 60),
        // A manual checkout may hold for CHECKOUT_HOLD_TTL_SECONDS; ten more minutes for its steps.
        sagaBoundSeconds: seconds(values['saga-bound'], 'saga-bound', config.CHECKOUT_HOLD_TTL_SECONDS + 600),
      },
      seconds(values.wait, 'wait', 0),
    );
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
    await Promise.allSettled([kafka.disconnect(), connection.close(), orderDb.destroy(), productDb.destroy(), paymentDb.destroy()]);
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
