/** Captured payments and their refunds: operators read and refund; the order saga refunds an order (its own scope). */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { errorBodySchema } from '../../shared/http/error-body';
import { bearerJwtSecurity, requireOperator, requireScope, serviceCredentialSecurity } from '../../shared/http/auth';
import { SERVICE_SCOPES } from '../../shared/http/service-auth';
import { paymentView, refundView } from '../domain';
import { getPayment, listPayments, refundOrder, refundPayment } from '../ledger';
import type { PaymentRouteOptions } from './options';
import {
  listPaymentsQuerySchema,
  orderParamsSchema,
  orderRefundResponseSchema,
  paymentListSchema,
  paymentParamsSchema,
  paymentSchema,
  refundBodySchema,
  refundByOrderBodySchema,
  refundResponseSchema,
} from '../schemas';

export const paymentRoutes: FastifyPluginAsyncZod<PaymentRouteOptions> = async (app, { db, metrics }) => {
  app.get(
    '/payments',
    {
      onRequest: requireOperator,
      schema: {
        tags: ['payments'],
        summary: 'Captured payments with their refunds, newest first, filtered by order or customer',
        security: bearerJwtSecurity,
        querystring: listPaymentsQuerySchema,
        response: { 200: paymentListSchema, 400: errorBodySchema, 401: errorBodySchema, 403: errorBodySchema },
      },
    },
    async (request) => {
      const { payments, refunds } = await listPayments(db, request.query);
      return { payments: payments.map((payment) => paymentView(payment, refunds)) };
    },
  );

  app.get(
    '/payments/:paymentId',
    {
      onRequest: requireOperator,
      schema: {
        tags: ['payments'],
        summary: 'One captured payment with its refunds',
        security: bearerJwtSecurity,
        params: paymentParamsSchema,
        response: { 200: paymentSchema, 400: errorBodySchema, 401: errorBodySchema, 403: errorBodySchema, 404: errorBodySchema },
      },
    },
    async (request) => {
      const { payment, refunds } = await getPayment(db, request.params.paymentId);
      return paymentView(payment, refunds);
    },
  );

  app.post(
    '/payments/:paymentId/refunds',
    {
      onRequest: requireOperator,
      config: { idempotent: true },
      schema: {
        tags: ['payments'],
        summary: 'Refund part or all of a payment to the customer balance',
        description:
          'Send an Idempotency-Key: a retry with the same key replays the first answer and moves no money again, even when that answer was lost (the refund keeps its key). ' +
          '409 REFUND_EXCEEDS_PAYMENT when more than the unrefunded amount is asked for; 422 IDEMPOTENCY_KEY_REUSED when the key was used for another request.',
        security: bearerJwtSecurity,
        params: paymentParamsSchema,
        body: refundBodySchema,
        response: { 201: refundResponseSchema, 400: errorBodySchema, 401: errorBodySchema, 403: errorBodySchema, 404: errorBodySchema, 409: errorBodySchema, 422: errorBodySchema },
      },
    },
    async (request, reply) => {
      const { amount, reason } = request.body;
      const { payment, refund } = await metrics.measure('refund', () =>
        refundPayment(db, request.params.paymentId, { amountMinor: amount, reason: reason ?? null, idempotencyKey: request.idempotency?.key }),
      );
      const { refunds } = await getPayment(db, payment.id);
      return reply.status(201).send({ refund: refundView(refund), payment: paymentView(payment, refunds) });
    },
  );

  app.post(
    '/payments/refund-by-order/:orderId',
    {
      onRequest: requireScope(SERVICE_SCOPES.paymentsRefundOrder),
      config: { idempotent: true },
      schema: {
        tags: ['payments'],
        summary: "The order saga's refund: return what is left of the order's payment, exactly once",
        description:
          '201 when this call refunded; 200 with the existing refund on every later call (naturally idempotent, no key needed). refund is null when earlier refunds had already returned everything. 404 PAYMENT_NOT_FOUND when the order has no captured payment.',
        security: serviceCredentialSecurity,
        params: orderParamsSchema,
        body: refundByOrderBodySchema,
        response: {
          200: orderRefundResponseSchema,
          201: orderRefundResponseSchema,
          400: errorBodySchema,
          401: errorBodySchema,
          403: errorBodySchema,
          404: errorBodySchema,
          409: errorBodySchema,
          422: errorBodySchema,
        },
      },
    },
    async (request, reply) => {
      const outcome = await metrics.measure('refund', () => refundOrder(db, request.params.orderId, request.body?.reason ?? null));
      const { refunds } = await getPayment(db, outcome.payment.id);
      return reply.status(outcome.effect === 'applied' ? 201 : 200).send({
        orderId: outcome.payment.order_id,
        refund: outcome.refund ? refundView(outcome.refund) : null,
        payment: paymentView(outcome.payment, refunds),
      });
    },
  );
};
