/** The order API: place, read, list, confirm and cancel orders, and look at an order's saga on Temporal. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
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
} from '../contract';
import { cancelOrder, confirmOrder, getOrder, getOrderSaga, placeOrder, toOrderResponse, type OrderDomainDependencies } from '../orders';
import { listOrders } from '../repository';

export type OrderRoutesOptions = Omit<OrderDomainDependencies, 'log'>;

const idempotencyHeader = {
  description: 'Optional Idempotency-Key: a repeated request with the same key gets the first answer',
};

export const orderRoutes: FastifyPluginAsyncZod<OrderRoutesOptions> = async (app, options) => {
  const tags = ['orders'];
  const deps = (log: OrderDomainDependencies['log']): OrderDomainDependencies => ({ ...options, log });

  app.post(
    '/orders',
    {
      config: { idempotent: true },
      schema: {
        tags,
        summary: 'Place an order: priced by the product service, then paid by the createOrder saga',
        description: `Answers 202 once the order is stored; its saga runs on Temporal. ${idempotencyHeader.description}.`,
        body: createOrderBodySchema,
        response: {
          202: orderAcceptedSchema,
          400: errorBodySchema,
          409: errorBodySchema,
          422: errorBodySchema,
          503: errorBodySchema,
        },
      },
    },
    async (request, reply) => {
      const accepted = await placeOrder(deps(request.log), request.body);
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
        querystring: listOrdersQuerySchema,
        response: { 200: orderListSchema, 400: errorBodySchema },
      },
    },
    async (request) => {
      const { orders, nextCursor } = await listOrders(options.db, request.query);
      return { items: orders.map(toOrderResponse), nextCursor };
    },
  );

  app.get(
    '/orders/:id',
    {
      schema: {
        tags,
        summary: 'An order with its priced items, status, failure reason and payment ids',
        params: idParamsSchema,
        response: { 200: orderSchema, 400: errorBodySchema, 404: errorBodySchema },
      },
    },
    async (request) => getOrder(options.db, request.params.id),
  );

  app.post(
    '/orders/:id/confirm',
    {
      config: { idempotent: true },
      schema: {
        tags,
        summary: 'Confirm a manual checkout: capture the held payment and stock',
        description: `Only an order in AWAITING_CONFIRMATION; otherwise 409 ORDER_NOT_AWAITING_CONFIRMATION. ${idempotencyHeader.description}.`,
        params: idParamsSchema,
        response: { 202: orderCommandAcceptedSchema, 400: errorBodySchema, 404: errorBodySchema, 409: errorBodySchema, 503: errorBodySchema },
      },
    },
    async (request, reply) => {
      const order = await confirmOrder(deps(request.log), request.params.id);
      reply.status(202);
      return { id: order.id, status: order.status, workflowId: order.workflowId };
    },
  );

  app.post(
    '/orders/:id/cancel',
    {
      config: { idempotent: true },
      schema: {
        tags,
        summary: 'Cancel an order: the cancelOrder saga releases or restocks the stock and refunds a payment',
        description: `FAILED and CANCELLED orders answer 409 ORDER_NOT_CANCELLABLE. A CANCELLING order whose cancellation stopped halfway is cancelled again. ${idempotencyHeader.description}.`,
        params: idParamsSchema,
        body: cancelOrderBodySchema,
        response: { 202: orderCommandAcceptedSchema, 400: errorBodySchema, 404: errorBodySchema, 409: errorBodySchema, 503: errorBodySchema },
      },
    },
    async (request, reply) => {
      const accepted = await cancelOrder(deps(request.log), request.params.id, request.body.reason);
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
        params: idParamsSchema,
        response: { 200: sagaSchema, 400: errorBodySchema, 404: errorBodySchema, 503: errorBodySchema },
      },
    },
    async (request) => getOrderSaga(options, request.params.id),
  );
};
