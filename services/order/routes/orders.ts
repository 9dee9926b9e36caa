/**
 * The order API: place, read, list, confirm and cancel orders, and look at an order's saga on Temporal.
 * Customers and operators only (bearer JWT); ownership rules are in ../orders.ts.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { bearerJwtSecurity, principalOf, requireCustomerOrOperator } from '../../shared/http/auth';
import { errorBodySchema } from '../../shared/http/error-body';
import {
  cancelOrderBodySchema,
  createOrderBodySchema,
  idParamsSchema,
  listOrdersQuerySchema,
  orderAcceptedSchema,
  orderCommandAcceptedSchema,
  orderListSchema,
  orderSchema,
  sagaSchema,
} from '../schemas';
import {
  confirmOrder,
  getOrder,
  getOrderSaga,
  listedCustomerId,
  orderingCustomerId,
  placeOrder,
  requestOrderCancellation,
  toOrderResponse,
  type OrderDomainDependencies,
} from '../orders';
import type { AdmissionControl } from '../admission';
import { listOrders } from '../repository';

export type OrderRoutesOptions = Omit<OrderDomainDependencies, 'log'> & { admission: AdmissionControl };

const idempotencyHeader = {
  description: 'Optional Idempotency-Key: a repeated request with the same key gets the first answer',
};

export const orderRoutes: FastifyPluginAsyncZod<OrderRoutesOptions> = async (app, options) => {
  const tags = ['orders'];
  const security = bearerJwtSecurity;
  // Every route here needs a customer or an operator; 401 and 403 are the same on each.
  app.addHook('onRequest', requireCustomerOrOperator);
  const { admission, ...domain } = options;
  const deps = (log: OrderDomainDependencies['log']): OrderDomainDependencies => ({ ...domain, log });

  app.post(
    '/orders',
    {
      config: { idempotent: true },
      schema: {
        tags,
        summary: "Place an order: priced from the order service's copy of the catalogue, then paid by the createOrder saga",
        description:
          'Answers 202 once the order and its saga start intent are stored; the worker starts its saga on Temporal. A customer orders for themselves. ' +
          'When too many orders wait for their saga: 503 ORDER_BACKLOG_FULL with Retry-After. ' +
          `${idempotencyHeader.description}; the key is stored with the order, so a retry never places a second one.`,
        security,
        body: createOrderBodySchema,
        response: {
          202: orderAcceptedSchema,
          400: errorBodySchema,
          401: errorBodySchema,
          403: errorBodySchema,
          409: errorBodySchema,
          422: errorBodySchema,
          503: errorBodySchema,
        },
      },
    },
    async (request, reply) => {
      const customerId = orderingCustomerId(principalOf(request), request.body.customerId);
      const refusal = admission.refusal();
      if (refusal) {
        reply.header('retry-after', String(refusal.retryAfterSeconds));
        throw refusal.error;
      }
      const accepted = await placeOrder(deps(request.log), { ...request.body, customerId }, request.idempotency);
      reply.status(202).header('location', `/orders/${accepted.id}`);
      return accepted;
    },
  );

  app.get(
    '/orders',
    {
      schema: {
        tags,
        summary: 'List orders, newest first, optionally by customer and status, a page at a time (keyset cursor)',
        description: "A customer's list holds only their own orders (a customerId of someone else is 403); an operator's holds everyone's.",
        security,
        querystring: listOrdersQuerySchema,
        response: { 200: orderListSchema, 400: errorBodySchema, 401: errorBodySchema, 403: errorBodySchema },
      },
    },
    async (request) => {
      const customerId = listedCustomerId(principalOf(request), request.query.customerId);
      const { orders, nextCursor } = await listOrders(domain.db, { ...request.query, customerId });
      return { items: orders.map(toOrderResponse), nextCursor };
    },
  );

  app.get(
    '/orders/:id',
    {
      schema: {
        tags,
        summary: 'An order with its priced items, status, failure reason and payment ids',
        description: "Another customer's order is 404 ORDER_NOT_FOUND, as a missing one.",
        security,
        params: idParamsSchema,
        response: { 200: orderSchema, 400: errorBodySchema, 401: errorBodySchema, 403: errorBodySchema, 404: errorBodySchema },
      },
    },
    async (request) => getOrder(domain.db, request.params.id, principalOf(request)),
  );

  app.post(
    '/orders/:id/confirm',
    {
      config: { idempotent: true },
      schema: {
        tags,
        summary: 'Confirm a manual checkout: capture the held payment and stock',
        description: `Only an order in AWAITING_CONFIRMATION; otherwise 409 ORDER_NOT_AWAITING_CONFIRMATION. Answers 202 with status CONFIRMING (or PAID, when the saga was quicker): the saga confirms the stock and captures the payment. ${idempotencyHeader.description}.`,
        security,
        params: idParamsSchema,
        response: { 202: orderCommandAcceptedSchema, 400: errorBodySchema, 401: errorBodySchema, 403: errorBodySchema, 404: errorBodySchema, 409: errorBodySchema, 503: errorBodySchema },
      },
    },
    async (request, reply) => {
      const accepted = await confirmOrder(deps(request.log), request.params.id, principalOf(request));
      reply.status(202).header('location', `/orders/${accepted.id}`);
      return accepted;
    },
  );

  app.post(
    '/orders/:id/cancel',
    {
      config: { idempotent: true },
      schema: {
        tags,
        summary: 'Cancel an order: the cancelOrder saga releases or restocks the stock and refunds a payment',
        description: `Answers 202 with status CANCELLING: the cancelOrder saga has the order. FAILED and CANCELLED orders answer 409 ORDER_NOT_CANCELLABLE. A CANCELLING order whose cancellation stopped halfway is cancelled again. ${idempotencyHeader.description}.`,
        security,
        params: idParamsSchema,
        body: cancelOrderBodySchema,
        response: { 202: orderCommandAcceptedSchema, 400: errorBodySchema, 401: errorBodySchema, 403: errorBodySchema, 404: errorBodySchema, 409: errorBodySchema, 503: errorBodySchema },
      },
    },
    async (request, reply) => {
      const accepted = await requestOrderCancellation(deps(request.log), request.params.id, principalOf(request), request.body.reason);
      reply.status(202).header('location', `/orders/${accepted.id}`);
      return accepted;
    },
  );

  app.get(
    '/orders/:id/saga',
    {
      schema: {
        tags,
        summary: "The live state of the order's createOrder saga on Temporal, with a link to the Web UI",
        security,
        params: idParamsSchema,
        response: { 200: sagaSchema, 400: errorBodySchema, 401: errorBodySchema, 403: errorBodySchema, 404: errorBodySchema, 503: errorBodySchema },
      },
    },
    async (request) => getOrderSaga(domain, request.params.id, principalOf(request)),
  );
};
