/** Catalogue routes: reading products is public, creating them needs the service token (admin). */
import type { FastifyPluginAsyncZod, ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Kysely } from 'kysely';
import type { ProductDatabase } from '../../../db/product/schema';
import { requireServiceToken, serviceTokenSecurity } from '../../shared/http/service-auth';
import { createProduct, getProduct, listCatalogue } from '../catalogue';
import { createProductBodySchema, listProductsQuerySchema, productIdParamsSchema, productListSchema, productSchema } from '../contract';
import { errorResponses } from './responses';

export interface ProductRoutesOptions {
  db: Kysely<ProductDatabase>;
  serviceToken: string;
}

export const productRoutes: FastifyPluginAsyncZod<ProductRoutesOptions> = async (app, { db, serviceToken }) => {
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

  await app.register(async (instance) => {
    // Encapsulated: the token hook guards only the routes registered in here.
    const admin = instance.withTypeProvider<ZodTypeProvider>();
    admin.addHook('onRequest', requireServiceToken(serviceToken));
    admin.post(
      '/products',
      {
        config: { idempotent: true },
        schema: {
          tags: ['products'],
          summary: 'Create a product (admin; service token)',
          security: serviceTokenSecurity,
          body: createProductBodySchema,
          response: { 201: productSchema, ...errorResponses(400, 401, 409, 413, 415, 422) },
        },
      },
      async (request, reply) => {
        const product = await createProduct(db, request.body);
        return reply.status(201).send(product);
      },
    );
  });
};
