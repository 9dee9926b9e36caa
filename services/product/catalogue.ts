/** The product catalogue: creating products and reading them with their stock figures. */
import type { Kysely } from 'kysely';
import type { ProductDatabase } from '../../db/product/schema';
import { ConflictError, NotFoundError } from '../shared/errors';
import { formatMinor } from '../../lib/money';
import { appendOutboxEvent } from '../../lib/outbox';
import { PRODUCT_ERROR_CODES, type ChangePriceBody, type CreateProductBody, type Product } from './schemas';
import { findProductById, insertProduct, listProducts, updateProductPrice, type ProductRow } from './repository';

type ProductDb = Kysely<ProductDatabase>;

/** Product ids are UUIDs; any other id names no product (404), never a database error. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function toProduct(row: ProductRow): Product {
  return {
    id: row.id,
    sku: row.sku,
    name: row.name,
    description: row.description,
    price: formatMinor(row.price_minor),
    currency: row.currency as Product['currency'],
    version: row.version,
    stockQuantity: row.stock_quantity,
    reservedQuantity: row.reserved_quantity,
    availableQuantity: row.stock_quantity - row.reserved_quantity,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

/**
 * Creates a product and its PRODUCT_CREATED event; a taken sku is refused with 409. `fixedId` is
 * for the demo data only (its README examples name the products).
 */
export async function createProduct(db: ProductDb, body: CreateProductBody, fixedId?: string): Promise<Product> {
  return db.transaction().execute(async (trx) => {
    const row = await insertProduct(trx, {
      id: fixedId,
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
      payload: { ...catalogueEntry(product), stockQuantity: product.stockQuantity },
    });
    return product;
  });
}

/** What both catalogue events carry: the fields of the order service's read model, at this version. */
function catalogueEntry(product: Product) {
  return { productId: product.id, sku: product.sku, name: product.name, price: product.price, currency: product.currency, version: product.version };
}

/**
 * Changes a product's price, with PRODUCT_PRICE_CHANGED carrying the new price and version in the
 * same transaction. Orders already placed keep the price they were accepted at.
 */
export async function changeProductPrice(db: ProductDb, id: string, body: ChangePriceBody): Promise<Product> {
  return db.transaction().execute(async (trx) => {
    const changed = UUID.test(id) ? await updateProductPrice(trx, id, { priceMinor: body.price, currency: body.currency }) : undefined;
    if (!changed) throw new NotFoundError('product', id);
    const product = toProduct(changed.row);
    await appendOutboxEvent(trx, {
      eventType: 'PRODUCT_PRICE_CHANGED',
      aggregateId: product.id,
      payload: { ...catalogueEntry(product), previousPrice: formatMinor(changed.previousPriceMinor) },
    });
    return product;
  });
}

export async function getProduct(db: ProductDb, id: string): Promise<Product> {
  const row = UUID.test(id) ? await findProductById(db, id) : undefined;
  if (!row) throw new NotFoundError('product', id);
  return toProduct(row);
}

export async function listCatalogue(db: ProductDb, page: { limit: number; cursor?: string | undefined }) {
  const { rows, nextCursor } = await listProducts(db, page);
  return { items: rows.map(toProduct), nextCursor };
}
