import { Client, Connection } from '@temporalio/client';
import { runService, startOrExit } from '../shared/run-service';
import { buildOrderApp } from './app';

startOrExit(() =>
  runService({
    service: 'order',
    port: (config) => config.ORDER_SERVICE_PORT,
    build: async (context) => {
      const connection = await Connection.connect({ address: context.config.TEMPORAL_ADDRESS });
      const temporal = new Client({ connection, namespace: context.config.TEMPORAL_NAMESPACE });
      return { app: await buildOrderApp({ ...context, temporal }), closers: [() => connection.close()] };
    },
  }),
);
