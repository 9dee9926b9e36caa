import { Client, Connection } from '@temporalio/client';
import { runService, startOrExit } from '../shared/run-service';
import { temporalConnectionOptions } from '../shared/temporal-connection';
import { buildOrderApp, orderSagasFor } from './app';
import { startOrderReconciler } from './reconciler';

startOrExit(() =>
  runService({
    service: 'order',
    port: (config) => config.ORDER_SERVICE_PORT,
    build: async (context) => {
      const { config, db, logger } = context;
      const connection = await Connection.connect(temporalConnectionOptions(config));
      const temporal = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
      const app = await buildOrderApp({ ...context, temporal });
      // Starts the sagas of orders committed by a process that died before starting them.
      const reconciler = startOrderReconciler({
        db,
        sagas: orderSagasFor(temporal, config),
        holdTtlSeconds: config.CHECKOUT_HOLD_TTL_SECONDS,
        minAgeSeconds: config.ORDER_RECONCILE_MIN_AGE_SECONDS,
        intervalMs: config.ORDER_RECONCILE_INTERVAL_MS,
        log: logger.child({ component: 'order-reconciler' }),
      });
      return { app, closers: [() => reconciler.stop(), () => connection.close()] };
    },
  }),
);
