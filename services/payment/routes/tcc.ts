/**
 * The payment TCC participant: try holds funds, confirm captures them, cancel releases them.
 * Every operation is idempotent (see ../ledger.ts for the rules and the barrier).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { errorBodySchema } from '../../shared/http/error-body';
import { requireScope, serviceCredentialSecurity } from '../../shared/http/auth';
import { SERVICE_SCOPES } from '../../shared/http/service-auth';
import { TCC_ROUTE_LOG_LEVEL } from '../../shared/tcc-metrics';
import { confirmationView, reservationView } from '../domain';
import { cancelReservation, confirmReservation, tryReservePayment, type CancelOutcome } from '../ledger';
import type { PaymentRouteOptions } from './options';
import {
  cancelResponseSchema,
  confirmBodySchema,
  confirmResponseSchema,
  orderParamsSchema,
  reservationParamsSchema,
  reservationSchema,
  tryBodySchema,
} from '../schemas';

const cancelView = (outcome: CancelOutcome) => ({ reservationId: outcome.reservationId, orderId: outcome.orderId, status: outcome.status });

export const tccRoutes: FastifyPluginAsyncZod<PaymentRouteOptions> = async (app, { db, config, metrics }) => {
  // The saga worker's credential (or an operator): holds and captures move customers' money.
  const reserve = requireScope(SERVICE_SCOPES.paymentsReserve);

  app.post(
    '/payments/try',
    {
      onRequest: reserve,
      logLevel: TCC_ROUTE_LOG_LEVEL,
      config: { idempotent: true },
      schema: {
        tags: ['tcc'],
        summary: 'TCC try: hold the amount on the customer account (idempotent per orderId)',
        description:
          'A repeated try for the same orderId returns the existing reservation as it now is. 402 INSUFFICIENT_FUNDS holds nothing and records PAYMENT_FAILED; 409 TRY_AFTER_CANCEL when the order was cancelled first.',
        security: serviceCredentialSecurity,
        body: tryBodySchema,
        response: {
          201: reservationSchema,
          400: errorBodySchema,
          401: errorBodySchema,
          403: errorBodySchema,
          402: errorBodySchema,
          404: errorBodySchema,
          409: errorBodySchema,
          422: errorBodySchema,
        },
      },
    },
    async (request, reply) => {
      const { orderId, customerId, amount, currency } = request.body;
      const { reservation } = await metrics.measure('try', () =>
        tryReservePayment(db, { orderId, customerId, amountMinor: amount, currency }, config.RESERVATION_TTL_SECONDS),
      );
      return reply.status(201).send(reservationView(reservation));
    },
  );

  app.post(
    '/payments/confirm/:reservationId',
    {
      onRequest: reserve,
      logLevel: TCC_ROUTE_LOG_LEVEL,
      config: { idempotent: true },
      schema: {
        tags: ['tcc'],
        summary: 'TCC confirm: capture the held amount (confirm after confirm returns the same payment)',
        description: '409 RESERVATION_CANCELLED after a cancel, 409 RESERVATION_EXPIRED once the hold has expired.',
        security: serviceCredentialSecurity,
        params: reservationParamsSchema,
        body: confirmBodySchema,
        response: { 200: confirmResponseSchema, 400: errorBodySchema, 401: errorBodySchema, 403: errorBodySchema, 404: errorBodySchema, 409: errorBodySchema, 422: errorBodySchema },
      },
    },
    async (request) => {
      const { payment } = await metrics.measure('confirm', () => confirmReservation(db, request.params.reservationId, request.body.paymentMethod));
      return confirmationView(payment);
    },
  );

  app.post(
    '/payments/cancel/:reservationId',
    {
      onRequest: reserve,
      logLevel: TCC_ROUTE_LOG_LEVEL,
      config: { idempotent: true },
      schema: {
        tags: ['tcc'],
        summary: 'TCC cancel: release the held amount (cancel after cancel succeeds without effect)',
        description: '409 RESERVATION_ALREADY_CONFIRMED after a confirm; status "expired" when the hold had already expired.',
        security: serviceCredentialSecurity,
        params: reservationParamsSchema,
        response: { 200: cancelResponseSchema, 400: errorBodySchema, 401: errorBodySchema, 403: errorBodySchema, 404: errorBodySchema, 409: errorBodySchema, 422: errorBodySchema },
      },
    },
    async (request) =>
      cancelView(await metrics.measure('cancel', () => cancelReservation(db, { reservationId: request.params.reservationId }))),
  );

  app.post(
    '/payments/cancel-by-order/:orderId',
    {
      onRequest: reserve,
      logLevel: TCC_ROUTE_LOG_LEVEL,
      config: { idempotent: true },
      schema: {
        tags: ['tcc'],
        summary: "TCC cancel by order id, for a caller that never saw the try's answer",
        description:
          'Same rules as cancel. When no try has arrived, records the barrier (reservationId null) so a late try is refused with 409 TRY_AFTER_CANCEL and nothing is held.',
        security: serviceCredentialSecurity,
        params: orderParamsSchema,
        response: { 200: cancelResponseSchema, 400: errorBodySchema, 401: errorBodySchema, 403: errorBodySchema, 409: errorBodySchema, 422: errorBodySchema },
      },
    },
    async (request) =>
      cancelView(await metrics.measure('cancel', () => cancelReservation(db, { orderId: request.params.orderId }))),
  );
};
