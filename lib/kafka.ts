/** Kafka topics of OMS (one per producing aggregate, a catch-all for unrouted events, the dead letters) and the client factory. */
import { readFileSync } from 'node:fs';
import { Kafka, logLevel, type Admin, type ITopicConfig, type KafkaConfig, type SASLOptions } from 'kafkajs';
import type { Config } from './config';

const DAY_MS = 24 * 60 * 60 * 1000;

export const TOPICS = {
  orderEvents: 'oms.orders.events',
  productEvents: 'oms.products.events',
  paymentEvents: 'oms.payments.events',
  generalEvents: 'oms.general.events',
  deadLetters: 'oms.dlq',
} as const;

export type TopicName = (typeof TOPICS)[keyof typeof TOPICS];

export interface TopicSpec {
  topic: TopicName;
  partitions: number;
  retentionMs: number;
}

export const TOPIC_SPECS: readonly TopicSpec[] = [
  { topic: TOPICS.orderEvents, partitions: 6, retentionMs: 7 * DAY_MS },
  { topic: TOPICS.productEvents, partitions: 6, retentionMs: 7 * DAY_MS },
  { topic: TOPICS.paymentEvents, partitions: 6, retentionMs: 7 * DAY_MS },
  { topic: TOPICS.generalEvents, partitions: 3, retentionMs: 7 * DAY_MS },
  { topic: TOPICS.deadLetters, partitions: 1, retentionMs: 30 * DAY_MS },
];

/** How many brokers hold each partition, and how many must have a write before acks=all confirms it. */
export type TopicReplication = Pick<Config, 'KAFKA_TOPIC_REPLICATION_FACTOR' | 'KAFKA_TOPIC_MIN_INSYNC_REPLICAS'>;

/** One broker, one copy: the dev stack's Kafka. */
export const SINGLE_COPY: TopicReplication = { KAFKA_TOPIC_REPLICATION_FACTOR: 1, KAFKA_TOPIC_MIN_INSYNC_REPLICAS: 1 };

/**
 * Topics OMS created once and no longer uses: `ensureTopics` deletes them where they remain, and
 * verify reports them. oms.saga.commands was routed to but never published to (sagas are Temporal
 * workflows, commanded through Temporal, not through Kafka).
 */
export const RETIRED_TOPICS: readonly string[] = ['oms.saga.commands'];

export function topicConfig({ topic, partitions, retentionMs }: TopicSpec, replication: TopicReplication = SINGLE_COPY): ITopicConfig {
  return {
    topic,
    numPartitions: partitions,
    replicationFactor: replication.KAFKA_TOPIC_REPLICATION_FACTOR,
    configEntries: [
      { name: 'retention.ms', value: String(retentionMs) },
      { name: 'cleanup.policy', value: 'delete' },
      { name: 'min.insync.replicas', value: String(replication.KAFKA_TOPIC_MIN_INSYNC_REPLICAS) },
    ],
  };
}

const KAFKA_SECURITY_KEYS = [
  'KAFKA_SSL',
  'KAFKA_SSL_CA_FILE',
  'KAFKA_SSL_CERT_FILE',
  'KAFKA_SSL_KEY_FILE',
  'KAFKA_SASL_MECHANISM',
  'KAFKA_SASL_USERNAME',
  'KAFKA_SASL_PASSWORD',
] as const;
type KafkaSecurityConfig = Pick<Config, (typeof KAFKA_SECURITY_KEYS)[number]>;
export type KafkaConnectionConfig = Pick<Config, 'KAFKA_BROKERS' | 'KAFKA_CLIENT_ID'> & Partial<KafkaSecurityConfig>;

/** Only what reaching the brokers takes, out of a larger configuration: for handing to another process. */
export function kafkaConnectionConfig(config: KafkaConnectionConfig): KafkaConnectionConfig {
  const security = Object.fromEntries(KAFKA_SECURITY_KEYS.filter((key) => config[key] !== undefined).map((key) => [key, config[key]]));
  return { KAFKA_BROKERS: config.KAFKA_BROKERS, KAFKA_CLIENT_ID: config.KAFKA_CLIENT_ID, ...security };
}

/**
 * TLS and SASL for the brokers, from configuration (loadConfig has already refused combinations that
 * cannot work, such as a certificate without its key or SASL PLAIN without TLS). Nothing set: plaintext.
 */
export function kafkaSecurityOptions(config: Partial<KafkaSecurityConfig>): Pick<KafkaConfig, 'ssl' | 'sasl'> {
  const options: Pick<KafkaConfig, 'ssl' | 'sasl'> = {};
  if (config.KAFKA_SSL) {
    const read = (path: string | undefined) => (path ? readFileSync(path, 'utf8') : undefined);
    const [ca, cert, key] = [read(config.KAFKA_SSL_CA_FILE), read(config.KAFKA_SSL_CERT_FILE), read(config.KAFKA_SSL_KEY_FILE)];
    // `true`: TLS verified against the system CAs.
    options.ssl = ca || cert ? { rejectUnauthorized: true, ca, cert, key } : true;
  }
  if (config.KAFKA_SASL_MECHANISM && config.KAFKA_SASL_USERNAME && config.KAFKA_SASL_PASSWORD) {
    options.sasl = { mechanism: config.KAFKA_SASL_MECHANISM, username: config.KAFKA_SASL_USERNAME, password: config.KAFKA_SASL_PASSWORD } as SASLOptions;
  }
  return options;
}

export function createKafka(config: KafkaConnectionConfig, clientId = config.KAFKA_CLIENT_ID): Kafka {
  // We use kafkajs's v2 default partitioner (murmur2, Java-compatible) knowingly; silence its notice.
  process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';
  return new Kafka({
    clientId,
    brokers: [...config.KAFKA_BROKERS],
    logLevel: logLevel.WARN,
    ...kafkaSecurityOptions(config),
    connectionTimeout: 3_000,
    retry: { retries: 5, initialRetryTime: 200 },
  });
}

/** Answers of a broker that has not yet applied a topic the controller made or moved. */
const NOT_YET = new Set(['UNKNOWN_TOPIC_OR_PARTITION', 'LEADER_NOT_AVAILABLE', 'NOT_LEADER_FOR_PARTITION']);

/** The broker's error type; kafkajs puts it in `cause` once its own retries ran out. */
function kafkaErrorType(error: unknown): string {
  const { type, cause } = error as { type?: string; cause?: { type?: string } };
  return type ?? cause?.type ?? '';
}

/**
 * `admin.createTopics`, then waits until every partition of the new topics has a leader that
 * answers as one. kafkajs's own `waitForLeaders` asks one broker once and gives up when it answers
 * "unknown topic": on a cluster of several brokers, each broker applies a new topic, and its
 * leadership of partitions, a moment after the controller made it, so that answer (or "not the
 * leader" from the leader-to-be) means "not yet" there, and is waited out here. Reading each
 * topic's offsets asks every partition's leader.
 */
export async function createTopicsWithLeaders(admin: Admin, topics: ITopicConfig[], timeoutMs = 30_000): Promise<boolean> {
  const created = await admin.createTopics({ topics, waitForLeaders: false });
  const names = topics.map((t) => t.topic);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const { topics: found } = await admin.fetchTopicMetadata({ topics: names });
      if (found.length === names.length && found.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) {
        for (const name of names) await admin.fetchTopicOffsets(name);
        return created;
      }
    } catch (error) {
      if (!NOT_YET.has(kafkaErrorType(error))) throw error;
    }
    if (Date.now() > deadline) throw new Error(`topics ${names.join(', ')} have no leader after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Deletes `topic`; false if it was already gone. A broker's topic list can lag the controller's by a
 * moment, and two workers starting together both see a retired topic: the second delete is told
 * "unknown topic", which means done.
 */
async function deleteTopicIfPresent(admin: Admin, topic: string): Promise<boolean> {
  try {
    await admin.deleteTopics({ topics: [topic] });
    return true;
  } catch (error) {
    if (kafkaErrorType(error) === 'UNKNOWN_TOPIC_OR_PARTITION') return false;
    throw error;
  }
}

/**
 * Creates the missing OMS topics and deletes the retired ones, and reports what it did; existing
 * topics are left as they are.
 */
export async function ensureTopics(
  kafka: Kafka,
  replication: TopicReplication = SINGLE_COPY,
  specs: readonly TopicSpec[] = TOPIC_SPECS,
  retired: readonly string[] = RETIRED_TOPICS,
): Promise<{ created: string[]; existing: string[]; deleted: string[] }> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const present = new Set(await admin.listTopics());
    const missing = specs.filter((spec) => !present.has(spec.topic));
    if (missing.length > 0) {
      await createTopicsWithLeaders(admin, missing.map((spec) => topicConfig(spec, replication)));
    }
    const deleted: string[] = [];
    for (const topic of retired.filter((name) => present.has(name))) {
      if (await deleteTopicIfPresent(admin, topic)) deleted.push(topic);
    }
    return { created: missing.map((s) => s.topic), existing: specs.filter((s) => present.has(s.topic)).map((s) => s.topic), deleted };
  } finally {
    await admin.disconnect();
  }
}

export interface PartitionLag {
  topic: string;
  partition: number;
  /** Messages between the group's committed offset and the partition's end. */
  lag: number;
}

/**
 * A consumer group's lag on each partition of its topics, read from the broker: true also when the
 * consumer is stuck or not running, which is when it matters. A partition the group never committed
 * on counts everything retained.
 */
export async function consumerGroupLag(admin: Admin, groupId: string, topics: readonly string[]): Promise<PartitionLag[]> {
  const committed = await admin.fetchOffsets({ groupId, topics: [...topics] });
  const lags: PartitionLag[] = [];
  for (const { topic, partitions } of committed) {
    for (const end of await admin.fetchTopicOffsets(topic)) {
      const position = BigInt(partitions.find((p) => p.partition === end.partition)?.offset ?? '-1');
      const from = position < 0n ? BigInt(end.low) : position;
      const lag = BigInt(end.high) - from;
      lags.push({ topic, partition: end.partition, lag: Number(lag > 0n ? lag : 0n) });
    }
  }
  return lags;
}
