import { runService, startOrExit } from '../shared/run-service';
import { buildPaymentApp } from './app';

startOrExit(() =>
  runService({
    service: 'payment',
    port: (config) => config.PAYMENT_SERVICE_PORT,
    build: async (context) => ({ app: await buildPaymentApp(context) }),
  }),
);
