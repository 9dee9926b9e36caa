/** Accounts: operators open them (with the money in them); a customer reads their own balance. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { errorBodySchema } from '../../shared/http/error-body';
import { ForbiddenError } from '../../shared/errors';
import { bearerJwtSecurity, mayActForCustomer, principalOf, requireAuthenticated, requireOperator } from '../../shared/http/auth';
import { accountView } from '../domain';
import { getAccount, openAccount } from '../ledger';
import type { PaymentRouteOptions } from './options';
import { accountSchema, customerParamsSchema, openAccountBodySchema } from '../schemas';

export const accountRoutes: FastifyPluginAsyncZod<PaymentRouteOptions> = async (app, { db }) => {
  app.post(
    '/accounts',
    {
      onRequest: requireOperator,
      config: { idempotent: true },
      schema: {
        tags: ['accounts'],
        summary: 'Open a customer account with an opening balance (operator)',
        security: bearerJwtSecurity,
        body: openAccountBodySchema,
        response: { 201: accountSchema, 400: errorBodySchema, 401: errorBodySchema, 403: errorBodySchema, 409: errorBodySchema, 422: errorBodySchema },
      },
    },
    async (request, reply) => {
      const { customerId, balance, currency } = request.body;
      const account = await openAccount(db, { customerId, balanceMinor: balance, currency });
      return reply.status(201).send(accountView(account));
    },
  );

  app.get(
    '/accounts/:customerId',
    {
      onRequest: requireAuthenticated,
      schema: {
        tags: ['accounts'],
        summary: "A customer's balance, held and available amounts (the customer themselves, or an operator)",
        description: "Another customer's account is 403 whether or not it exists.",
        security: bearerJwtSecurity,
        params: customerParamsSchema,
        response: { 200: accountSchema, 400: errorBodySchema, 401: errorBodySchema, 403: errorBodySchema, 404: errorBodySchema },
      },
    },
    async (request) => {
      if (!mayActForCustomer(principalOf(request), request.params.customerId)) throw new ForbiddenError('a customer may read only their own account');
      return accountView(await getAccount(db, request.params.customerId));
    },
  );
};
