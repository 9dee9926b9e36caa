/** Customers: created and (de)activated by operators; read by the customer themselves or an operator. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { CustomerRow, OrderDb } from '../repository';
import { findCustomer, updateCustomerStatus } from '../repository';
import { createCustomer } from '../customers';
import { ForbiddenError, NotFoundError } from '../../shared/errors';
import { errorBodySchema } from '../../shared/http/error-body';
import { bearerJwtSecurity, mayActForCustomer, principalOf, requireAuthenticated, requireOperator } from '../../shared/http/auth';
import { createCustomerBodySchema, customerSchema, idParamsSchema, updateCustomerStatusBodySchema, type CustomerResponse } from '../schemas';

export interface CustomerRoutesOptions {
  db: OrderDb;
}

function toCustomerResponse(row: CustomerRow): CustomerResponse {
  return { id: row.id, name: row.name, email: row.email, status: row.status, createdAt: row.created_at.toISOString(), updatedAt: row.updated_at.toISOString() };
}

export const customerRoutes: FastifyPluginAsyncZod<CustomerRoutesOptions> = async (app, { db }) => {
  const tags = ['customers'];

  app.post(
    '/customers',
    {
      onRequest: requireOperator,
      config: { idempotent: true },
      schema: {
        tags,
        summary: 'Create a customer (operator)',
        security: bearerJwtSecurity,
        body: createCustomerBodySchema,
        response: { 201: customerSchema, 400: errorBodySchema, 401: errorBodySchema, 403: errorBodySchema, 409: errorBodySchema, 422: errorBodySchema },
      },
    },
    async (request, reply) => {
      const row = await createCustomer(db, request.body);
      reply.status(201).header('location', `/customers/${row.id}`);
      return toCustomerResponse(row);
    },
  );

  app.get(
    '/customers/:id',
    {
      onRequest: requireAuthenticated,
      schema: {
        tags,
        summary: 'A customer and whether they may place orders (ACTIVE) or not (INACTIVE)',
        description: "A customer reads only themselves: another id is 403 whether or not it exists (an operator reads anyone's).",
        security: bearerJwtSecurity,
        params: idParamsSchema,
        response: { 200: customerSchema, 400: errorBodySchema, 401: errorBodySchema, 403: errorBodySchema, 404: errorBodySchema },
      },
    },
    async (request) => {
      // Decided from the id alone, before any lookup, so the answer says nothing about other customers.
      if (!mayActForCustomer(principalOf(request), request.params.id)) throw new ForbiddenError('a customer may read only their own record');
      const row = await findCustomer(db, request.params.id);
      if (!row) throw new NotFoundError('customer', request.params.id);
      return toCustomerResponse(row);
    },
  );

  app.patch(
    '/customers/:id/status',
    {
      onRequest: requireOperator,
      schema: {
        tags,
        summary: 'Activate or deactivate a customer (operator); an INACTIVE customer\'s orders fail',
        security: bearerJwtSecurity,
        params: idParamsSchema,
        body: updateCustomerStatusBodySchema,
        response: { 200: customerSchema, 400: errorBodySchema, 401: errorBodySchema, 403: errorBodySchema, 404: errorBodySchema },
      },
    },
    async (request) => {
      const row = await updateCustomerStatus(db, request.params.id, request.body.status);
      if (!row) throw new NotFoundError('customer', request.params.id);
      return toCustomerResponse(row);
    },
  );
};
