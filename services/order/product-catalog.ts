/**
 * Prices for an order come from here: the product service's GET /products/:id, never the client.
 * A product the catalogue does not know is the client's mistake (422); a catalogue that does not
 * answer in time, or answers 5xx or nonsense, is ours (503), and no order is written.
 */
import { ApiError } from '../shared/errors';
import { productSchema, type Product } from '../product/contract';
import { ORDER_ERROR_CODES } from './contract';

export interface ProductCatalog {
  /** The products with these ids, keyed by id; throws UNKNOWN_PRODUCT naming every missing one. */
  quote(productIds: string[]): Promise<Map<string, Product>>;
}

export interface ProductCatalogOptions {
  baseUrl: string;
  timeoutMs: number;
}

function unavailable(reason: string): ApiError {
  return new ApiError(503, ORDER_ERROR_CODES.dependencyUnavailable, 'the product service is unavailable; retry later', {
    dependency: 'product-service',
    reason,
  });
}

export function createProductCatalog({ baseUrl, timeoutMs }: ProductCatalogOptions): ProductCatalog {
  async function fetchProduct(productId: string): Promise<Product | undefined> {
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
    const parsed = productSchema.safeParse(await response.json().catch(() => undefined));
    if (!parsed.success) throw unavailable('answered with a body that is not a product');
    return parsed.data;
  }

  return {
    async quote(productIds) {
      const products = await Promise.all(productIds.map(fetchProduct));
      const missing = productIds.filter((_, index) => products[index] === undefined);
      if (missing.length > 0) {
        throw new ApiError(422, ORDER_ERROR_CODES.unknownProduct, `unknown product(s): ${missing.join(', ')}`, { productIds: missing });
      }
      return new Map(products.map((product) => [product!.id, product!]));
    },
  };
}
