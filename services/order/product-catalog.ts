/**
 * Prices for an order come from here, never from the client: the order service's read model of the
 * catalogue (catalogue_products), fed by the product service's PRODUCT_CREATED and
 * PRODUCT_PRICE_CHANGED events (workers/catalogue-consumer.ts). One query prices a whole order.
 *
 * A product the read model has not seen yet (its event still on its way, or created before the
 * events carried names and versions) is asked of the product service's GET /products/:id and
 * written to the read model, so the next order finds it locally. A product the catalogue does not
 * know is the client's mistake (422); a catalogue that does not answer in time, or answers 5xx or
 * nonsense, is ours (503), and no order is written.
 *
 * The read model trails the product service by the outbox relay's commit-to-Kafka latency plus the
 * consumer's: an order accepted in that window is priced at the previous version, which is the
 * price the shop showed when it accepted the order, and the line records that version.
 */
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { OrderDatabase } from '../../db/order/schema';
import { ApiError } from '../shared/errors';
import type { EventEnvelope, EventPayload } from '../../lib/events';
import { currencyCode, moneyInput, type SUPPORTED_CURRENCIES } from '../../lib/money';
import { ORDER_ERROR_CODES } from './schemas';

/** A product as an order is priced from it. */
export interface CatalogueProduct {
  id: string;
  sku: string;
  name: string;
  priceMinor: number;
  currency: (typeof SUPPORTED_CURRENCIES)[number];
  /** The catalogue version of this price. */
  version: number;
}

export interface ProductCatalog {
  /** The products with these ids, keyed by id; throws UNKNOWN_PRODUCT naming every missing one. */
  quote(productIds: string[]): Promise<Map<string, CatalogueProduct>>;
}

export interface ProductCatalogOptions {
  db: Kysely<OrderDatabase>;
  /** The product service, asked only for products the read model has not seen. */
  baseUrl: string;
  timeoutMs: number;
}

/**
 * What the order service reads of the product service's GET /products/:id: ours, not the product
 * service's schema, so a field the order service does not use can change there without breaking us,
 * and an answer missing one we do use is refused here.
 */
const productAnswerSchema = z.object({
  id: z.uuid(),
  sku: z.string(),
  name: z.string(),
  price: moneyInput,
  currency: currencyCode,
  version: z.number().int().positive(),
});

function unavailable(reason: string): ApiError {
  return new ApiError(503, ORDER_ERROR_CODES.dependencyUnavailable, 'the product service is unavailable; retry later', {
    dependency: 'product-service',
    reason,
  });
}

/**
 * Writes `product` to the read model unless it already holds that version or a newer one (events
 * of one product can arrive after the fallback read a newer state, or be redelivered). Returns
 * whether the row changed.
 */
export async function upsertCatalogueProduct(db: Kysely<OrderDatabase>, product: CatalogueProduct): Promise<boolean> {
  const written = await db
    .insertInto('catalogue_products')
    .values({
      product_id: product.id,
      sku: product.sku,
      name: product.name,
      price_minor: product.priceMinor,
      currency: product.currency,
      version: product.version,
    })
    .onConflict((oc) =>
      oc
        .column('product_id')
        .doUpdateSet((eb) => ({
          sku: eb.ref('excluded.sku'),
          name: eb.ref('excluded.name'),
          price_minor: eb.ref('excluded.price_minor'),
          currency: eb.ref('excluded.currency'),
          version: eb.ref('excluded.version'),
          updated_at: eb.fn('now'),
        }))
        .where('catalogue_products.version', '<', (eb) => eb.ref('excluded.version')),
    )
    .returning('product_id')
    .executeTakeFirst();
  return written !== undefined;
}

type CatalogueEvent = EventEnvelope & { eventType: 'PRODUCT_CREATED' | 'PRODUCT_PRICE_CHANGED' };

export const CATALOGUE_EVENT_TYPES: ReadonlySet<string> = new Set(['PRODUCT_CREATED', 'PRODUCT_PRICE_CHANGED']);

export function isCatalogueEvent(event: EventEnvelope): event is CatalogueEvent {
  return CATALOGUE_EVENT_TYPES.has(event.eventType);
}

/**
 * Applies a catalogue event to the read model; idempotent by the product's version, so a
 * redelivered or late event changes nothing. A PRODUCT_CREATED written before events carried a
 * name and version is skipped: the fallback reads that product when an order first names it.
 */
export async function applyCatalogueEvent(db: Kysely<OrderDatabase>, event: CatalogueEvent): Promise<'applied' | 'stale' | 'skipped'> {
  const payload = event.payload as EventPayload<'PRODUCT_CREATED'> | EventPayload<'PRODUCT_PRICE_CHANGED'>;
  if (payload.name === undefined || payload.version === undefined) return 'skipped';
  const changed = await upsertCatalogueProduct(db, {
    id: payload.productId.toLowerCase(),
    sku: payload.sku,
    name: payload.name,
    priceMinor: moneyInput.parse(payload.price),
    currency: payload.currency,
    version: payload.version,
  });
  return changed ? 'applied' : 'stale';
}

export function createProductCatalog({ db, baseUrl, timeoutMs }: ProductCatalogOptions): ProductCatalog {
  async function fetchProduct(productId: string): Promise<CatalogueProduct | undefined> {
    let response: Response;
    try {
      response = await fetch(new URL(`/products/${encodeURIComponent(productId)}`, baseUrl), {
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      const timedOut = error instanceof DOMException && error.name === 'TimeoutError';
      throw unavailable(timedOut ? `no answer within ${timeoutMs} ms` : 'connection failed');
    }
    if (response.status === 404) {
      await response.body?.cancel();
      return undefined;
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw unavailable(`answered ${response.status}`);
    }
    const parsed = productAnswerSchema.safeParse(await response.json().catch(() => undefined));
    if (!parsed.success) throw unavailable('answered with a body that is not a product');
    const { id, sku, name, price, currency, version } = parsed.data;
    const product = { id, sku, name, priceMinor: price, currency, version };
    await upsertCatalogueProduct(db, product);
    return product;
  }

  return {
    async quote(productIds) {
      const rows = await db
        .selectFrom('catalogue_products')
        .select(['product_id', 'sku', 'name', 'price_minor', 'currency', 'version'])
        .where('product_id', 'in', productIds)
        .execute();
      const products = new Map<string, CatalogueProduct>(
        rows.map((row) => [row.product_id, {
          id: row.product_id,
          sku: row.sku,
          name: row.name,
          priceMinor: row.price_minor,
          // Written only from events and answers whose currency was checked against the supported ones.
          currency: row.currency as CatalogueProduct['currency'],
          version: row.version,
        }]),
      );
      const unseen = productIds.filter((id) => !products.has(id));
      const fetched = await Promise.all(unseen.map(fetchProduct));
      const missing = unseen.filter((_, index) => fetched[index] === undefined);
      if (missing.length > 0) {
        throw new ApiError(422, ORDER_ERROR_CODES.unknownProduct, `unknown product(s): ${missing.join(', ')}`, { productIds: missing });
      }
      for (const product of fetched) products.set(product!.id, product!);
      return products;
    },
  };
}
