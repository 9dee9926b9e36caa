/** The product catalogue: creating products and reading them with their stock figures. */
import type { Kysely } from 'kysely';
import type { ProductDatabase } from '../../db/product/schema';
import { ConflictError, NotFoundError } from '../shared/errors';
import { formatMinor } from '../shared/money';
import { appendOutboxEvent } from '../shared/outbox';
import { PRODUCT_ERROR_CODES, type CreateProductBody, type Product } from './contract';
import { findProductById, insertProduct, listProducts, type ProductRow } from './repository';

type ProductDb = Kysely<ProductDatabase>;

export function toProduct(row: ProductRow): Product {
  return {
    id: row.id,
    sku: row.sku,
    name: row.name,
    description: row.description,
    price: formatMinor(row.price_minor),
    currency: row.currency as Product['currency'],
    stockQuantity: row.stock_quantity,
    reservedQuantity: row.reserved_quantity,
    availableQuantity: row.stock_quantity - row.reserved_quantity,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

/** Creates a product and its PRODUCT_CREATED event; a taken sku is refused with 409. */
export async function createProduct(db: ProductDb, body: CreateProductBody): Promise<Product> {
  return db.transaction().execute(async (trx) => {
    const row = await insertProduct(trx, {
      sku: body.sku,
      name: body.name,
      description: body.description ?? null,
      priceMinor: body.price,
      currency: body.currency,
      stockQuantity: body.stockQuantity,
    });
    if (!row) throw new ConflictError(PRODUCT_ERROR_CODES.skuAlreadyExists, `a product with sku ${body.sku} already exists`, { sku: body.sku });
    const product = toProduct(row);
    await appendOutboxEvent(trx, {
      eventType: 'PRODUCT_CREATED',
      aggregateId: product.id,
      payload: { productId: product.id, sku: product.sku, price: product.price, currency: product.currency, stockQuantity: product.stockQuantity },
    });
    return product;
  });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function getProduct(db: ProductDb, id: string): Promise<Product> {
  const row = UUID.test(id) ? await findProductById(db, id) : undefined;
  if (!row) throw new NotFoundError('product', id);
  return toProduct(row);
}

export async function listCatalogue(db: ProductDb, page: { limit: number; cursor?: string | undefined }) {
  const { rows, nextCursor } = await listProducts(db, page);
  return { items: rows.map(toProduct), nextCursor };
}
