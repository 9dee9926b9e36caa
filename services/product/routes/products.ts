/** Catalogue routes: reading products is public (shoppers browse without signing in); creating them is for operators. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Kysely } from 'kysely';
import type { ProductDatabase } from '../../../db/product/schema';
import { bearerJwtSecurity, requireOperator } from '../../shared/http/auth';
import { changeProductPrice, createProduct, getProduct, listCatalogue } from '../catalogue';
import { changePriceBodySchema, createProductBodySchema, listProductsQuerySchema, productIdParamsSchema, productListSchema, productSchema } from '../schemas';
import { errorResponses } from './responses';

export interface ProductRoutesOptions {
  db: Kysely<ProductDatabase>;
}

export const productRoutes: FastifyPluginAsyncZod<ProductRoutesOptions> = async (app, { db }) => {
  app.get(
    '/products',
    {
      schema: {
        tags: ['products'],
        summary: 'List products with their stock figures, oldest first, a page at a time (keyset cursor)',
        querystring: listProductsQuerySchema,
        response: { 200: productListSchema, ...errorResponses(400) },
      },
    },
    async (request) => listCatalogue(db, request.query),
  );

  app.get(
    '/products/:id',
    {
      schema: {
        tags: ['products'],
        summary: 'One product with its stock, reserved and available quantities',
        params: productIdParamsSchema,
        response: { 200: productSchema, ...errorResponses(400, 404) },
      },
    },
    async (request) => getProduct(db, request.params.id),
  );

  app.post(
    '/products',
    {
      onRequest: requireOperator,
      config: { idempotent: true },
      schema: {
        tags: ['products'],
        summary: 'Create a product (operator)',
        security: bearerJwtSecurity,
        body: createProductBodySchema,
        response: { 201: productSchema, ...errorResponses(400, 401, 403, 409, 413, 415, 422) },
      },
    },
    async (request, reply) => {
      const product = await createProduct(db, request.body);
      return reply.status(201).send(product);
    },
  );

  app.put(
    '/products/:id/price',
    {
      onRequest: requireOperator,
      config: { idempotent: true },
      schema: {
        tags: ['products'],
        summary: "Change a product's price (operator); PRODUCT_PRICE_CHANGED tells the order service",
        description: 'Orders already accepted keep their price; new orders are priced at this one once the order service has read the event.',
        security: bearerJwtSecurity,
        params: productIdParamsSchema,
        body: changePriceBodySchema,
        response: { 200: productSchema, ...errorResponses(400, 401, 403, 404, 413, 415, 422) },
      },
    },
    async (request) => changeProductPrice(db, request.params.id, request.body),
  );
};
