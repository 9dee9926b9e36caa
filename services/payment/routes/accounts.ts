/** Admin: open a customer account and read its balance, held and available amounts. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { errorBodySchema } from '../../shared/http/error-body';
import { serviceTokenSecurity } from '../../shared/http/service-auth';
import { accountView } from '../domain';
import { getAccount, openAccount } from '../ledger';
import type { PaymentRouteOptions } from './options';
import { accountSchema, customerParamsSchema, openAccountBodySchema } from './schemas';

export const accountRoutes: FastifyPluginAsyncZod<PaymentRouteOptions> = async (app, { db }) => {
  app.post(
    '/accounts',
    {
      config: { idempotent: true },
      schema: {
        tags: ['accounts'],
        summary: 'Open a customer account with an opening balance',
        security: serviceTokenSecurity,
        body: openAccountBodySchema,
        response: { 201: accountSchema, 400: errorBodySchema, 401: errorBodySchema, 409: errorBodySchema, 422: errorBodySchema },
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
      schema: {
        tags: ['accounts'],
        summary: "A customer's balance, held and available amounts",
        security: serviceTokenSecurity,
        params: customerParamsSchema,
        response: { 200: accountSchema, 400: errorBodySchema, 401: errorBodySchema, 404: errorBodySchema },
      },
    },
    async (request) => accountView(await getAccount(db, request.params.customerId)),
  );
};
