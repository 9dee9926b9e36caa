import { Client, Connection } from '@temporalio/client';
import { runService, startOrExit } from '../shared/run-service';
import { temporalConnectionOptions } from '../../lib/temporal-connection';
import { buildOrderApp } from './app';

startOrExit(() =>
  runService({
    service: 'order',
    port: (config) => config.ORDER_SERVICE_PORT,
    build: async (context) => {
      const { config } = context;
      // Lazy: the order service accepts orders whether Temporal answers or not (the worker starts
      // the sagas); only cancel, confirm and the saga view need it, and they answer 503 without it.
      const connection = Connection.lazy(temporalConnectionOptions(config));
      const temporal = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
      const app = await buildOrderApp({ ...context, temporal });
      return { app, closers: [() => connection.close()] };
    },
  }),
);
