/**
 * Kafka stops while services keep committing: the events wait as PENDING (none is dead-lettered
 * for the broker's absence), the relay's failures show on its workflow, and once Kafka is back
 * every event is delivered, each aggregate in commit order.
 *
 * DISRUPTIVE: this suite stops the stack's Kafka (infra/stack.sh stop kafka: the broker, or all
 * three on the production topology) for up to a few minutes and always starts it again. Whatever else uses that broker meanwhile (the services and
 * worker of the stack it runs against, another suite) sees a real outage. Run it against a stack
 * of your own (`./oms test` does), not the one you are developing against; leave it out with
 * `npx vitest run --project integration --exclude test/integration/outbox-kafka-outage.test.ts`
 * (README, Tests). A client-side cut does
 * not stand in for it: a dropped connection leaves kafkajs waiting on its request timeout, where a
 * stopped broker refuses at once, which is the behaviour under test.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOPICS } from '../../lib/kafka';
import { eventually, positionGroupAtEnd, startKafkaProbe, type KafkaProbe } from '../helpers/kafka-probe';
import { commitOrderEvent, startRelayHarness, type RelayHarness } from '../helpers/outbox-relay';

const stackScript = fileURLToPath(new URL('../../infra/stack.sh', import.meta.url));
// On three brokers, each stops with a controlled shutdown, the last one after a minute without a
// quorum to confirm it to, and they start one after the other, the killed one recovering its logs:
// on a busy machine the stop took 161 s and the start over 4 minutes. Bounds, not waits. Never
// synchronous: the relay's worker runs in this process, and an event loop blocked for the whole
// stop sent no heartbeats, so its attempts failed as heartbeat timeouts instead of for Kafka.
const kafkaCtl = async (action: 'start' | 'stop') => {
  const child = spawn('bash', [stackScript, action, 'kafka'], { stdio: 'inherit', timeout: 600_000 });
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`infra/stack.sh ${action} kafka exited ${code}`);
};

describe('outbox relay while Kafka is down', () => {
  let relay: RelayHarness;
  let probe: KafkaProbe | undefined;

  beforeAll(async () => {
    relay = await startRelayHarness('outbox-outage', { OUTBOX_MAX_RETRIES: '2' });
  });
  afterAll(async () => {
    await probe?.stop();
    await relay?.close();
  });

  it('keeps events PENDING through the outage and delivers all of them, in order, after Kafka restarts', { timeout: 1_500_000 }, async () => {
    const workflowId = await relay.startRelay();
    const aggregates: string[] = [randomUUID(), randomUUID(), randomUUID()];
    const probeGroup = `test-probe-${randomUUID()}`;
    await positionGroupAtEnd(relay.kafka, probeGroup, [TOPICS.orderEvents]);
    // The relay is up and publishing before the outage.
    const before = await commitOrderEvent(relay.db, aggregates[0]!);
    await eventually(async () => {
      const row = await relay.db.selectFrom('outbox_events').select('status').where('event_id', '=', before.eventId).executeTakeFirstOrThrow();
      return row.status === 'PUBLISHED' ? true : undefined;
    }, 15_000, 'the first event to be published');

    const written = new Map<string, string[]>(aggregates.map((id) => [id, id === aggregates[0] ? [before.eventId] : []]));
    await kafkaCtl('stop');
    try {
      for (let i = 0; i < 4; i++) {
        for (const orderId of aggregates) written.get(orderId)!.push((await commitOrderEvent(relay.db, orderId)).eventId);
      }
      // Several relay attempts fail meanwhile; Temporal retries the activity and shows why.
      const handle = relay.temporal.client.workflow.getHandle(workflowId);
      const pending = await eventually(async () => {
        const activity = (await handle.describe()).raw.pendingActivities?.[0];
        return activity && (activity.attempt ?? 0) >= 3 ? activity : undefined;
      }, 60_000, 'the relay activity to be retrying');
      expect(pending.lastFailure?.message).toMatch(/Kafka/);
      const rows = await relay.db.selectFrom('outbox_events').select(['status']).where('event_id', '<>', before.eventId).execute();
      expect(rows).toHaveLength(12);
      expect(rows.every((row) => row.status === 'PENDING')).toBe(true);
    } finally {
      await kafkaCtl('start');
    }

    await eventually(async () => {
      const rows = await relay.db.selectFrom('outbox_events').select('status').execute();
      return rows.every((row) => row.status === 'PUBLISHED') ? true : undefined;
    }, 120_000, 'every event PUBLISHED after the restart', 500);
    probe = await startKafkaProbe(relay.kafka, [TOPICS.orderEvents], (m) => m.key !== null && aggregates.includes(m.key), { groupId: probeGroup });
    const messages = await probe.waitFor((all) => new Set(all.map((m) => m.headers['event-id'])).size >= 13, 60_000);
    for (const orderId of aggregates) {
      const ids = messages.filter((m) => m.key === orderId).map((m) => m.headers['event-id']);
      expect(ids).toEqual(written.get(orderId));
    }
    const failed = await relay.db.selectFrom('outbox_events').select('id').where('status', '=', 'FAILED').execute();
    expect(failed).toEqual([]);
  });
});
