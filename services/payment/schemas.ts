/** Request and response schemas of the payment API; OpenAPI is generated from these. */
import { z } from 'zod';
import { uuidInput } from '../shared/ids';
import { currencyCode, moneyInput, moneyString, positiveMoneyInput } from '../../lib/money';

const externalId = (what: string) => z.string().trim().min(1).max(100).describe(what);

export const customerIdSchema = externalId('Customer id (owned by the order service)');
export const orderIdSchema = externalId('Order id; also the TCC transaction id');

export const accountSchema = z
  .object({
    customerId: z.string(),
    currency: currencyCode,
    balance: moneyString.describe('Money in the account, held amounts included'),
    held: moneyString.describe('Sum of open payment holds'),
    available: moneyString.describe('balance - held: what a new try can hold'),
  })
  .meta({ id: 'Account' });

export const openAccountBodySchema = z.object({
  customerId: customerIdSchema,
  balance: moneyInput,
  currency: currencyCode,
});

export const reservationSchema = z
  .object({
    reservationId: z.uuid(),
    orderId: z.string(),
    customerId: z.string(),
    amount: moneyString,
    currency: currencyCode,
    expiresAt: z.iso.datetime({ offset: true }),
    status: z.enum(['reserved', 'confirmed', 'cancelled', 'expired']).describe('"reserved" for a new hold; a repeated try shows the hold as it now is'),
  })
  .meta({ id: 'PaymentReservation' });

export const tryBodySchema = z.object({
  orderId: orderIdSchema,
  customerId: customerIdSchema,
  amount: positiveMoneyInput,
  currency: currencyCode,
});

export const reservationParamsSchema = z.object({ reservationId: uuidInput });
export const orderParamsSchema = z.object({ orderId: orderIdSchema });
export const paymentParamsSchema = z.object({ paymentId: uuidInput });
export const customerParamsSchema = z.object({ customerId: customerIdSchema });

export const confirmBodySchema = z.object({
  paymentMethod: z.string().trim().min(1).max(50).describe('How the customer pays, e.g. ACCOUNT_BALANCE or CARD'),
});

export const confirmResponseSchema = z
  .object({
    paymentId: z.uuid(),
    reservationId: z.uuid(),
    orderId: z.string(),
    transactionId: z.string(),
    amount: moneyString,
    currency: currencyCode,
    status: z.literal('confirmed'),
  })
  .meta({ id: 'PaymentConfirmation' });

export const cancelResponseSchema = z
  .object({
    reservationId: z.uuid().nullable().describe('null when the cancel arrived before any try (only the barrier was written)'),
    orderId: z.string(),
    status: z.enum(['cancelled', 'expired']).describe('"expired": the hold had already expired and its funds were released'),
  })
  .meta({ id: 'PaymentCancellation' });

export const refundSchema = z
  .object({
    refundId: z.uuid(),
    paymentId: z.uuid(),
    amount: moneyString,
    reason: z.string().nullable(),
    source: z.enum(['API', 'ORDER']).describe('API: POST /payments/{paymentId}/refunds; ORDER: the order saga (refund-by-order)'),
    createdAt: z.iso.datetime({ offset: true }),
  })
  .meta({ id: 'Refund' });

export const paymentSchema = z
  .object({
    paymentId: z.uuid(),
    reservationId: z.uuid(),
    orderId: z.string(),
    customerId: z.string(),
    amount: moneyString,
    refundedAmount: moneyString,
    currency: currencyCode,
    paymentMethod: z.string(),
    transactionId: z.string(),
    status: z.enum(['COMPLETED', 'PARTIALLY_REFUNDED', 'REFUNDED']),
    createdAt: z.iso.datetime({ offset: true }),
    refunds: z.array(refundSchema),
  })
  .meta({ id: 'Payment' });

export const refundBodySchema = z.object({
  amount: positiveMoneyInput.optional().describe('Omitted: refund everything not yet refunded'),
  reason: z.string().trim().min(1).max(500).optional(),
});

export const refundResponseSchema = z.object({ refund: refundSchema, payment: paymentSchema }).meta({ id: 'RefundResult' });

// Fastify hands a route null when the request has no body; the saga may send none.
export const refundByOrderBodySchema = z.object({ reason: z.string().trim().min(1).max(500).optional() }).nullish();

export const orderRefundResponseSchema = z
  .object({
    orderId: z.string(),
    refund: refundSchema.nullable().describe("The order's one saga refund; null when earlier refunds had returned everything"),
    payment: paymentSchema,
  })
  .meta({ id: 'OrderRefundResult' });

export const listPaymentsQuerySchema = z.object({
  orderId: orderIdSchema.optional(),
  customerId: customerIdSchema.optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

export const paymentListSchema = z.object({ payments: z.array(paymentSchema) }).meta({ id: 'PaymentList' });
