/**
 * The product service's HTTP schemas: request and response schemas of the catalogue and the
 * stock TCC participant, and the error codes callers branch on. The routes validate with these
 * schemas and the order service's stock activities can import the inferred types.
 */
import { z } from 'zod';
import { uuidInput } from '../shared/ids';
import { keysetQuerySchema, nextCursorSchema } from '../shared/keyset';
import { currencyCode, moneyString, positiveMoneyInput } from '../../lib/money';

/** TCC branch id of the stock participant in tcc_barriers (the transaction id is the order id). */
export const STOCK_BRANCH_ID = 'stock';

/** Error codes of the product service; each is a decision, never a transient fault. */
export const PRODUCT_ERROR_CODES = {
  productNotFound: 'PRODUCT_NOT_FOUND',
  skuAlreadyExists: 'SKU_ALREADY_EXISTS',
  insufficientStock: 'INSUFFICIENT_STOCK',
  tryAfterCancel: 'TRY_AFTER_CANCEL',
  tryConflict: 'TRY_CONFLICT',
  reservationNotFound: 'RESERVATION_NOT_FOUND',
  reservationCancelled: 'RESERVATION_CANCELLED',
  reservationExpired: 'RESERVATION_EXPIRED',
  reservationAlreadyConfirmed: 'RESERVATION_ALREADY_CONFIRMED',
  reservationNotConfirmed: 'RESERVATION_NOT_CONFIRMED',
} as const;

/** Order ids come from the order service; they key reservations and barriers (VARCHAR(100)). */
export const orderIdSchema = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces')
  .describe('Order id: the TCC transaction id');


const MAX_STOCK = 1_000_000_000; // far below INT's 2^31, so sums of stock and restocks cannot overflow
const quantity = z.number().int().positive().max(1_000_000);

// ---- catalogue ----

export const createProductBodySchema = z.object({
  sku: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, '1-64 letters, digits, ".", "_" or "-"'),
  name: z.string().trim().min(1).max(200),
  description: z.string().max(2_000).nullish(),
  price: positiveMoneyInput,
  currency: currencyCode,
  stockQuantity: z.number().int().nonnegative().max(MAX_STOCK),
});
export type CreateProductBody = z.infer<typeof createProductBodySchema>;

export const productSchema = z
  .object({
    id: z.uuid(),
    sku: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    price: moneyString,
    currency: currencyCode,
    /** Units on hand, reserved ones included. */
    stockQuantity: z.number().int(),
    reservedQuantity: z.number().int(),
    availableQuantity: z.number().int(),
    /** 1 when created, one more at each price change: the version an order line's price came from. */
    version: z.number().int().positive(),
    createdAt: z.iso.datetime(),
    updatedAt: z.iso.datetime(),
  })
  .meta({ id: 'Product' });
export type Product = z.infer<typeof productSchema>;

export const changePriceBodySchema = z.strictObject({ price: positiveMoneyInput, currency: currencyCode });
export type ChangePriceBody = z.infer<typeof changePriceBodySchema>;

/** Any id is accepted: one that is not a product's (UUID or not) is 404 PRODUCT_NOT_FOUND. */
export const productIdParamsSchema = z.object({ id: z.string().min(1).max(100) });

export const listProductsQuerySchema = z.object(keysetQuerySchema);

export const productListSchema = z.object({ items: z.array(productSchema), nextCursor: nextCursorSchema }).meta({ id: 'ProductList' });

// ---- stock TCC ----

const stockItemSchema = z.object({ productId: uuidInput, quantity });

export const tryStockBodySchema = z.object({
  orderId: orderIdSchema,
  items: z
    .array(stockItemSchema)
    .min(1)
    .max(100)
    .refine((items) => new Set(items.map((item) => item.productId)).size === items.length, 'each productId may appear only once'),
});
export type TryStockBody = z.infer<typeof tryStockBodySchema>;

export const stockReservationSchema = z.object({
  reservationId: z.uuid(),
  productId: z.uuid(),
  quantity: z.number().int(),
  expiresAt: z.iso.datetime(),
});

export const tryStockResponseSchema = z
  .object({
    orderId: z.string(),
    reservations: z.array(stockReservationSchema),
    /** "confirmed" only when a repeated try finds the reservation already confirmed. */
    status: z.enum(['reserved', 'confirmed']),
  })
  .meta({ id: 'TryStockResponse' });
export type TryStockResponse = z.infer<typeof tryStockResponseSchema>;

export const orderIdParamsSchema = z.object({ orderId: orderIdSchema });

const stockLineSchema = z.object({ productId: z.uuid(), quantity: z.number().int() });

export const confirmStockResponseSchema = z
  .object({ orderId: z.string(), items: z.array(stockLineSchema), status: z.literal('confirmed') })
  .meta({ id: 'ConfirmStockResponse' });
export type ConfirmStockResponse = z.infer<typeof confirmStockResponseSchema>;

export const cancelStockResponseSchema = z
  .object({ orderId: z.string(), releasedItems: z.array(stockLineSchema), status: z.literal('released') })
  .meta({ id: 'CancelStockResponse' });
export type CancelStockResponse = z.infer<typeof cancelStockResponseSchema>;

export const restockResponseSchema = z
  .object({ orderId: z.string(), restockedItems: z.array(stockLineSchema), status: z.literal('restocked') })
  .meta({ id: 'RestockResponse' });
export type RestockResponse = z.infer<typeof restockResponseSchema>;
