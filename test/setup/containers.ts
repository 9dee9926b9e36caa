/**
 * The Docker path (OMS_TESTCONTAINERS=1): the same stack in containers, for machines that have a
 * Docker engine. Not the default: the machines this project is built on have none.
 */
import { GenericContainer, Wait, type StartedTestContainer } from 'testcontainers';
import { ensureTopics, createKafka } from '../../lib/kafka';
import { searchAttributeArguments } from '../../infra/search-attributes';
import type { StackEnv } from './stack-env';

// Kafka must advertise the address clients reach it on, so its host port is fixed.
const KAFKA_HOST_PORT = Number(process.env.OMS_TESTCONTAINERS_KAFKA_PORT ?? 19092);

export async function startContainers(): Promise<{ env: StackEnv; stop: () => Promise<void> }> {
  const started: StartedTestContainer[] = [];
  const start = async (container: GenericContainer) => {
    const running = await container.start();
    started.push(running);
    return running;
  };
  try {
    const postgres = await start(
      new GenericContainer('postgres:15')
        .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust' })
        .withExposedPorts(5432)
        .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2)),
    );
    const redis = await start(new GenericContainer('redis:7').withExposedPorts(6379).withWaitStrategy(Wait.forLogMessage(/Ready to accept connections/)));
    const kafka = await start(
      new GenericContainer('apache/kafka:3.9.1')
        .withExposedPorts({ container: 9092, host: KAFKA_HOST_PORT })
        .withEnvironment({
          KAFKA_NODE_ID: '1',
          KAFKA_PROCESS_ROLES: 'broker,controller',
          KAFKA_LISTENERS: 'PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093',
          KAFKA_ADVERTISED_LISTENERS: `PLAINTEXT://127.0.0.1:${KAFKA_HOST_PORT}`,
          KAFKA_CONTROLLER_LISTENER_NAMES: 'CONTROLLER',
          KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
          KAFKA_CONTROLLER_QUORUM_VOTERS: '1@localhost:9093',
          KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: '1',
          KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
          KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: '1',
          KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
          KAFKA_AUTO_CREATE_TOPICS_ENABLE: 'false',
        })
        .withWaitStrategy(Wait.forLogMessage(/Kafka Server started/)),
    );
    const temporal = await start(
      new GenericContainer('temporalio/temporal:1.5.1')
        .withCommand([
          'server', 'start-dev', '--ip', '0.0.0.0', '--ui-port', '8233',
          ...searchAttributeArguments().flatMap((attribute) => ['--search-attribute', attribute]),
        ])
        .withExposedPorts(7233, 8233)
        .withWaitStrategy(Wait.forListeningPorts()),
    );
    const env: StackEnv = {
      PG_ADMIN_URL: `postgres://postgres@${postgres.getHost()}:${postgres.getMappedPort(5432)}/postgres`,
      PG_HOST: `${postgres.getHost()}:${postgres.getMappedPort(5432)}`,
      REDIS_URL: `redis://${redis.getHost()}:${redis.getMappedPort(6379)}`,
      KAFKA_BROKERS: `127.0.0.1:${kafka.getMappedPort(9092)}`,
      TEMPORAL_ADDRESS: `${temporal.getHost()}:${temporal.getMappedPort(7233)}`,
      TEMPORAL_UI_URL: `http://${temporal.getHost()}:${temporal.getMappedPort(8233)}`,
    };
    await ensureTopics(createKafka({ KAFKA_BROKERS: [env.KAFKA_BROKERS], KAFKA_CLIENT_ID: 'oms-test-setup' }));
    return { env, stop: async () => void (await Promise.all(started.map((c) => c.stop()))) };
  } catch (error) {
    await Promise.all(started.map((c) => c.stop()));
    throw error;
  }
}
