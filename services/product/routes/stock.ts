/** The stock TCC participant's routes, for the saga worker's credential (or an operator): try, confirm, cancel, and restock. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Kysely } from 'kysely';
import type { ProductDatabase } from '../../../db/product/schema';
import { requireScope, serviceCredentialSecurity } from '../../shared/http/auth';
import { SERVICE_SCOPES } from '../../shared/http/service-auth';
import { TCC_ROUTE_LOG_LEVEL, type TccMetrics } from '../../shared/tcc-metrics';
import {
  cancelStockResponseSchema,
  confirmStockResponseSchema,
  orderIdParamsSchema,
  restockResponseSchema,
  tryStockBodySchema,
  tryStockResponseSchema,
} from '../schemas';
import { cancelStock, confirmStock, restockOrder, tryReserveStock } from '../stock-tcc';
import { errorResponses } from './responses';

export interface StockRoutesOptions {
  db: Kysely<ProductDatabase>;
  reservationTtlSeconds: number;
  metrics: TccMetrics;
}

export const stockRoutes: FastifyPluginAsyncZod<StockRoutesOptions> = async (app, { db, reservationTtlSeconds, metrics }) => {
  const reserve = requireScope(SERVICE_SCOPES.stockReserve);

  app.post(
    '/stock/try',
    {
      onRequest: reserve,
      logLevel: TCC_ROUTE_LOG_LEVEL,
      config: { idempotent: true },
      schema: {
        tags: ['stock TCC'],
        summary: 'TRY: reserve every item or nothing (201; a repeated try for the order answers 200 with the existing reservation)',
        description:
          'Errors: 404 PRODUCT_NOT_FOUND (details.productIds), 409 INSUFFICIENT_STOCK (details: productId, requested, available, shortages), ' +
          '409 TRY_AFTER_CANCEL (the order was cancelled first), 409 TRY_CONFLICT (the order reserved other items), ' +
          '409 RESERVATION_CANCELLED / RESERVATION_EXPIRED (a repeated try after the reservation ended).',
        security: serviceCredentialSecurity,
        body: tryStockBodySchema,
        response: { 201: tryStockResponseSchema, 200: tryStockResponseSchema, ...errorResponses(400, 401, 403, 404, 409, 413, 415, 422) },
      },
    },
    async (request, reply) => {
      const { effect, response } = await metrics.measure('try', () => tryReserveStock(db, request.body, reservationTtlSeconds));
      return reply.status(effect === 'applied' ? 201 : 200).send(response);
    },
  );

  app.post(
    '/stock/confirm/:orderId',
    {
      onRequest: reserve,
      logLevel: TCC_ROUTE_LOG_LEVEL,
      config: { idempotent: true },
      schema: {
        tags: ['stock TCC'],
        summary: 'CONFIRM: deduct the reserved units from stock (a repeated confirm changes nothing)',
        description: 'Errors: 404 RESERVATION_NOT_FOUND, 409 RESERVATION_CANCELLED, 409 RESERVATION_EXPIRED (also when expiry is detected now).',
        security: serviceCredentialSecurity,
        params: orderIdParamsSchema,
        response: { 200: confirmStockResponseSchema, ...errorResponses(400, 401, 403, 404, 409, 422) },
      },
    },
    async (request) => (await metrics.measure('confirm', () => confirmStock(db, request.params.orderId))).response,
  );

  app.post(
    '/stock/cancel/:orderId',
    {
      onRequest: reserve,
      logLevel: TCC_ROUTE_LOG_LEVEL,
      config: { idempotent: true },
      schema: {
        tags: ['stock TCC'],
        summary: 'CANCEL: release the reserved units (repeats and unknown orders answer 200; a cancel before its try blocks that try)',
        description: 'Errors: 409 RESERVATION_ALREADY_CONFIRMED (restock instead).',
        security: serviceCredentialSecurity,
        params: orderIdParamsSchema,
        response: { 200: cancelStockResponseSchema, ...errorResponses(400, 401, 403, 409, 422) },
      },
    },
    async (request) => (await metrics.measure('cancel', () => cancelStock(db, request.params.orderId))).response,
  );

  app.post(
    '/stock/restock/:orderId',
    {
      onRequest: requireScope(SERVICE_SCOPES.stockRestock),
      logLevel: TCC_ROUTE_LOG_LEVEL,
      config: { idempotent: true },
      schema: {
        tags: ['stock TCC'],
        summary: "Return a cancelled paid order's confirmed units to stock, exactly once",
        description: 'Errors: 404 RESERVATION_NOT_FOUND, 409 RESERVATION_NOT_CONFIRMED.',
        security: serviceCredentialSecurity,
        params: orderIdParamsSchema,
        response: { 200: restockResponseSchema, ...errorResponses(400, 401, 403, 404, 409, 422) },
      },
    },
    async (request) => (await metrics.measure('restock', () => restockOrder(db, request.params.orderId))).response,
  );
};
