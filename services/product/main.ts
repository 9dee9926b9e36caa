import { runService, startOrExit } from '../shared/run-service';
import { buildProductApp } from './app';

startOrExit(() =>
  runService({
    service: 'product',
    port: (config) => config.PRODUCT_SERVICE_PORT,
    build: async (context) => ({ app: await buildProductApp(context) }),
  }),
);
