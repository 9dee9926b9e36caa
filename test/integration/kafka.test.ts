import { randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKafka, createTopicsWithLeaders, ensureTopics, RETIRED_TOPICS, TOPIC_SPECS } from '../../lib/kafka';
import { testConfig } from '../helpers/stack';

// Proves the broker this project installs (Kafka 3.9 from Maven jars) speaks the protocol versions
// kafkajs 2.2.4 negotiates: admin, idempotent produce, and consumer groups.
describe('Kafka broker with kafkajs', () => {
  let kafka: Kafka;
  const topic = `oms.test.kafka-${randomUUID()}`;

  beforeAll(() => {
    kafka = createKafka(testConfig(), 'oms-test-kafka');
  });
  afterAll(async () => {
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect();
  });

  it('creates a topic with the requested partitions and retention', async () => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      const created = await createTopicsWithLeaders(admin, [{ topic, numPartitions: 3, configEntries: [{ name: 'retention.ms', value: '60000' }] }]);
      expect(created).toBe(true);
      // Usable at once: a new client that never retries reads every partition's offsets from its
      // leader (on three brokers, the leaders-to-be answer "not the leader" until they apply it).
      const impatient = new Kafka({ brokers: [...testConfig().KAFKA_BROKERS], clientId: 'oms-test-impatient', retry: { retries: 0 }, logLevel: logLevel.NOTHING }).admin();
      await impatient.connect();
      try {
        expect(await impatient.fetchTopicOffsets(topic)).toHaveLength(3);
      } finally {
        await impatient.disconnect();
      }
      const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
      expect(metadata.topics[0]?.partitions).toHaveLength(3);
      const configs = await admin.describeConfigs({ resources: [{ type: 2, name: topic, configNames: ['retention.ms'] }], includeSynonyms: false });
      expect(configs.resources[0]?.configEntries[0]?.configValue).toBe('60000');
    } finally {
      await admin.disconnect();
    }
  });

  it('delivers what an idempotent producer sends to a consumer group, in order per key', async () => {
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const key = randomUUID();
    const values = Array.from({ length: 20 }, (_, i) => `${key}:${i}`);
    await producer.send({ topic, acks: -1, messages: values.map((value) => ({ key, value, headers: { 'event-type': 'TEST' } })) });
    await producer.disconnect();

    const groupId = `oms-test-${randomUUID()}`;
    const consumer = kafka.consumer({ groupId });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const received: string[] = [];
    const headers: string[] = [];
    await consumer.run({
      eachMessage: async ({ message }) => {
        if (message.key?.toString() !== key) return;
        received.push(message.value?.toString() ?? '');
        headers.push(message.headers?.['event-type']?.toString() ?? '');
      },
    });
    try {
      await expect.poll(() => received.length, { timeout: 30_000 }).toBe(values.length);
      expect(received).toEqual(values);
      expect(new Set(headers)).toEqual(new Set(['TEST']));
    } finally {
      await consumer.disconnect();
    }
    // The group committed its offsets: it is known to the broker with every message consumed.
    const admin = kafka.admin();
    await admin.connect();
    try {
      const offsets = await admin.fetchOffsets({ groupId, topics: [topic] });
      const committed = offsets[0]?.partitions.reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
      expect(committed).toBe(values.length);
    } finally {
      await admin.deleteGroups([groupId]).catch(() => undefined);
      await admin.disconnect();
    }
  });

  it('ensureTopics deletes a retired topic that is still there', async () => {
    const kafkaClient = createKafka(testConfig(), 'oms-test-topics');
    const retired = `test-retired-${randomUUID()}`;
    const admin = kafkaClient.admin();
    await admin.connect();
    try {
      await createTopicsWithLeaders(admin, [{ topic: retired, numPartitions: 1 }]);
      // On three brokers, the one asked for the topic list may learn of the new topic a moment after
      // its leader did: until then ensureTopics sees nothing to delete, which is right.
      await expect.poll(async () => (await ensureTopics(kafkaClient, testConfig(), TOPIC_SPECS, [retired])).deleted, { timeout: 10_000 }).toEqual([retired]);
      await expect.poll(() => admin.listTopics(), { timeout: 10_000 }).not.toContain(retired);
      // Gone, even where a broker still lists it for a moment: a delete told "unknown topic" deleted nothing.
      expect((await ensureTopics(kafkaClient, testConfig(), TOPIC_SPECS, [retired])).deleted).toEqual([]);
    } finally {
      await admin.disconnect();
    }
  });

  it('has every OMS topic, as many copies of each partition as configured, and ensureTopics is idempotent', async () => {
    const config = testConfig();
    const kafkaClient = createKafka(config, 'oms-test-topics');
    await ensureTopics(kafkaClient, config);
    const again = await ensureTopics(kafkaClient, config);
    expect(again.created).toEqual([]);
    expect(again.deleted).toEqual([]);
    expect(again.existing.sort()).toEqual(TOPIC_SPECS.map((s) => s.topic).sort());
    const admin = kafkaClient.admin();
    await admin.connect();
    try {
      const present = await admin.listTopics();
      for (const retired of RETIRED_TOPICS) expect(present, retired).not.toContain(retired);
      const metadata = await admin.fetchTopicMetadata({ topics: TOPIC_SPECS.map((s) => s.topic) });
      for (const spec of TOPIC_SPECS) {
        const partitions = metadata.topics.find((t) => t.name === spec.topic)?.partitions ?? [];
        expect(partitions, spec.topic).toHaveLength(spec.partitions);
        // One on the dev stack, three on the production topology's three brokers.
        for (const partition of partitions) expect(partition.replicas, spec.topic).toHaveLength(config.KAFKA_TOPIC_REPLICATION_FACTOR);
      }
    } finally {
      await admin.disconnect();
    }
  });
});
