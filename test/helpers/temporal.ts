/** Temporal for tests: the real server global setup found, a task queue per suite so suites never steal each other's tasks. */
import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { inject } from 'vitest';

export interface TestTemporal {
  client: Client;
  workerConnection: NativeConnection;
  taskQueue: string;
  close: () => Promise<void>;
}

export async function connectTestTemporal(suite: string): Promise<TestTemporal> {
  const address = inject('stack').TEMPORAL_ADDRESS;
  const connection = await Connection.connect({ address });
  const workerConnection = await NativeConnection.connect({ address });
  return {
    client: new Client({ connection, namespace: 'default' }),
    workerConnection,
    taskQueue: `test-${suite}-${randomUUID()}`,
    close: async () => {
      await workerConnection.close();
      await connection.close();
    },
  };
}
