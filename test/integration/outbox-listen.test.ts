/**
 * The relay wakes on the outbox trigger's NOTIFY, not on its poll: with a one-minute poll interval
 * and a relay run that lasts longer than the test, a newly committed event still goes out.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOPICS } from '../../lib/kafka';
import { startKafkaProbe, type KafkaProbe } from '../helpers/kafka-probe';
import { commitOrderEvent, startRelayHarness, type RelayHarness } from '../helpers/outbox-relay';

describe('outbox relay wake-up', () => {
  let relay: RelayHarness;
  let probe: KafkaProbe;
  const orderId = randomUUID();

  beforeAll(async () => {
    relay = await startRelayHarness('outbox-listen', { OUTBOX_POLL_INTERVAL_MS: '60000' });
    probe = await startKafkaProbe(relay.kafka, [TOPICS.orderEvents], (m) => m.key === orderId);
    await relay.startRelay({ runForMs: 10 * 60_000 });
  });
  afterAll(async () => {
    await probe?.stop();
    await relay?.close();
  });

  it('publishes events committed while the relay sleeps, long before its next poll', async () => {
    // Once `first` is in Kafka, the pass that claimed it is over its claim: events committed from
    // now on can only be claimed by a later pass, and the relay starts one when the outbox NOTIFY
    // rings or its one-minute poll comes round (a pass that claims less than a batch then waits).
    const first = await commitOrderEvent(relay.db, orderId);
    await probe.waitFor((all) => all.some((m) => m.headers['event-id'] === first.eventId), 20_000);

    const second = await commitOrderEvent(relay.db, orderId);
    const third = await commitOrderEvent(relay.db, orderId);
    // 20 s is a third of the poll interval: only the NOTIFY can have woken it.
    const messages = await probe.waitFor((all) => all.some((m) => m.headers['event-id'] === third.eventId), 20_000);
    expect(messages.map((m) => m.headers['event-id'])).toEqual([first.eventId, second.eventId, third.eventId]);
  });
});
