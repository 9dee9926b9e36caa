/**
 * The server of `./oms bench floor` (floor-bench.ts), run as a process of its own so that its CPU is
 * measured apart from the load generator's. A bare Fastify app (no logging, authentication or
 * validation) on node-postgres and kafkajs, one route per kind of request in FLOOR_KINDS: the
 * cheapest each kind can be with the stack's own libraries, which is what the bench measures.
 *
 * The parent sends a FloorServerSetup over IPC and gets the port back; it ends this process with
 * SIGTERM.
 */
import Fastify from 'fastify';
import pg from 'pg';
import { createKafka } from '../../lib/kafka';
import { inTransaction, isMain } from './bench-stats';
import { FLOOR_KINDS, type FloorKind, type FloorServerSetup } from './floor-bench';

async function serve(setup: FloorServerSetup): Promise<number> {
  const pool = new pg.Pool({ connectionString: setup.databaseUrl, max: setup.poolSize });
  const producer = createKafka(setup.kafka, 'oms-bench-floor').producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await producer.connect();
  const app = Fastify();
  const handlers: Record<FloorKind, (id: string) => Promise<void>> = {
    http: async () => undefined,
    // Named, as the participants' statements are (db/connection.ts): parsed once per connection.
    statement: async (id) => {
      await pool.query({ name: 'floor-row', text: 'INSERT INTO floor_rows (id) VALUES ($1)', values: [id] });
    },
    // The least a state change with its outbox event is: a row and an event row in one transaction.
    transaction: async (id) => {
      await inTransaction(pool, async (client) => {
        await client.query({ name: 'floor-row', text: 'INSERT INTO floor_rows (id) VALUES ($1)', values: [id] });
        await client.query({ name: 'floor-event', text: 'INSERT INTO floor_outbox (aggregate_id, payload) VALUES ($1, $2)', values: [id, { type: 'FLOOR', id }] });
      });
    },
    // One event published alone and waited for, acknowledged by all in-sync replicas, as the relay's producer does.
    event: async (id) => {
      await producer.send({ topic: setup.topic, acks: -1, messages: [{ key: id, value: JSON.stringify({ type: 'FLOOR', id }) }] });
    },
  };
  for (const kind of FLOOR_KINDS) {
    app.post<{ Body: { id: string } }>(`/${kind}`, async (request) => {
      await handlers[kind](request.body.id);
      return { ok: true };
    });
  }
  process.once('SIGTERM', () => {
    void Promise.allSettled([app.close(), pool.end(), producer.disconnect()]).then(() => process.exit(0));
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('the floor server has no TCP port');
  return address.port;
}

if (isMain(import.meta.url)) {
  process.once('message', (setup: FloorServerSetup) => {
    serve(setup).then(
      (port) => process.send?.({ port }),
      (error: unknown) => {
        console.error('floor server failed to start', error);
        process.exit(1);
      },
    );
  });
}
