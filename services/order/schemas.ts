/**
 * The order service's HTTP schemas: request and response schemas of customers, orders and their
 * sagas, and the error codes callers branch on. Routes validate with these schemas; OpenAPI is
 * generated from them.
 */
import { z } from 'zod';
import { SAGA_STATES } from '../../workflows/order-contract';
import { uuidInput } from '../shared/ids';
import { keysetQuerySchema, nextCursorSchema } from '../shared/keyset';
import { currencyCode, moneyString } from '../../lib/money';

/** Error codes of the order service (besides the shared VALIDATION_ERROR, UNAUTHORIZED, ...). */
export const ORDER_ERROR_CODES = {
  customerNotFound: 'CUSTOMER_NOT_FOUND',
  emailAlreadyExists: 'EMAIL_ALREADY_EXISTS',
  orderNotFound: 'ORDER_NOT_FOUND',
  unknownCustomer: 'UNKNOWN_CUSTOMER',
  unknownProduct: 'UNKNOWN_PRODUCT',
  mixedCurrencies: 'MIXED_CURRENCIES',
  dependencyUnavailable: 'DEPENDENCY_UNAVAILABLE',
  orderNotAwaitingConfirmation: 'ORDER_NOT_AWAITING_CONFIRMATION',
  orderNotCancellable: 'ORDER_NOT_CANCELLABLE',
  sagaNotFound: 'SAGA_NOT_FOUND',
  tooManyOpenCheckouts: 'TOO_MANY_OPEN_CHECKOUTS',
  /** 503 with Retry-After: too many orders wait for their saga (admission control). */
  orderBacklogFull: 'ORDER_BACKLOG_FULL',
  /** The order total is above what the payment service can take. */
  orderTotalTooLarge: 'ORDER_TOTAL_TOO_LARGE',
} as const;

const isoTime = z.iso.datetime();

// ---- customers ----

export const customerStatusSchema = z.enum(['ACTIVE', 'INACTIVE']);

export const createCustomerBodySchema = z.strictObject({
  name: z.string().trim().min(1).max(200),
  // Stored lower-cased, so "A@x.io" and "a@x.io" are one customer.
  email: z.email().max(320).transform((email) => email.toLowerCase()),
  status: customerStatusSchema.default('ACTIVE'),
});

export const updateCustomerStatusBodySchema = z.strictObject({ status: customerStatusSchema });

export const customerSchema = z
  .object({ id: z.uuid(), name: z.string(), email: z.string(), status: customerStatusSchema, createdAt: isoTime, updatedAt: isoTime })
  .meta({ id: 'Customer' });
export type CustomerResponse = z.infer<typeof customerSchema>;

export const idParamsSchema = z.object({ id: uuidInput });

// ---- orders ----

/**
 * CONFIRMING: a manual checkout the customer confirmed, its stock being confirmed and its payment captured.
 * COMPENSATION_FAILED: the order failed and something could not be undone yet; it needs attention and may be cancelled.
 */
export const orderStatusSchema = z.enum(['PENDING', 'AWAITING_CONFIRMATION', 'CONFIRMING', 'PAID', 'FAILED', 'COMPENSATION_FAILED', 'CANCELLING', 'CANCELLED']);
const MAX_ITEMS = 100;

// Strict objects: a client that sends its own unitPrice (or any field we do not know) is refused,
// not silently repriced, so it learns that prices come from the product service.
const orderItemInputSchema = z.strictObject({
  productId: uuidInput,
  quantity: z.number().int().positive().max(10_000),
});

export const createOrderBodySchema = z.strictObject({
  customerId: uuidInput
    .optional()
    .describe("Whose order: a customer's token decides it (leave it out, or send your own id; another is 403); an operator must name the customer"),
  items: z
    .array(orderItemInputSchema)
    .min(1)
    .max(MAX_ITEMS)
    .refine((items) => new Set(items.map((item) => item.productId)).size === items.length, 'each productId may appear only once'),
  paymentMethod: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9_-]{0,49}$/, '1-50 letters, digits, "_" or "-"')
    .default('ACCOUNT_BALANCE')
    .describe('How the customer pays, as the payment service records it; ACCOUNT_BALANCE debits their account'),
  confirmation: z
    .enum(['auto', 'manual'])
    .default('auto')
    .describe(
      '"manual": the payment and stock are held until POST /orders/:id/confirm (or the hold expires); a customer may have' +
        ' MAX_OPEN_CHECKOUTS_PER_CUSTOMER open at once, beyond that 409 TOO_MANY_OPEN_CHECKOUTS',
    ),
});
export type CreateOrderBody = z.infer<typeof createOrderBodySchema>;

export const orderAcceptedSchema = z
  .object({ id: z.uuid(), status: orderStatusSchema, workflowId: z.string() })
  .meta({ id: 'OrderAccepted' });

export const orderItemSchema = z.object({
  productId: z.uuid(),
  sku: z.string(),
  productName: z.string(),
  quantity: z.number().int(),
  unitPrice: moneyString,
  lineTotal: moneyString,
  /** The catalogue version the price came from; null on orders priced before the order service kept a catalogue. */
  priceVersion: z.number().int().nullable(),
});

export const orderSchema = z
  .object({
    id: z.uuid(),
    customerId: z.uuid(),
    status: orderStatusSchema,
    items: z.array(orderItemSchema),
    totalAmount: moneyString,
    currency: currencyCode,
    paymentMethod: z.string(),
    confirmation: z.enum(['auto', 'manual']),
    failureReason: z.string().nullable(),
    cancellationReason: z.string().nullable(),
    paymentId: z.string().nullable(),
    paymentReservationId: z.string().nullable(),
    workflowId: z.string(),
    createdAt: isoTime,
    updatedAt: isoTime,
  })
  .meta({ id: 'Order' });
export type OrderResponse = z.infer<typeof orderSchema>;

export const listOrdersQuerySchema = z.object({
  customerId: uuidInput.optional(),
  status: orderStatusSchema.optional(),
  ...keysetQuerySchema,
});
export type ListOrdersQuery = z.infer<typeof listOrdersQuerySchema>;

export const orderListSchema = z.object({ items: z.array(orderSchema), nextCursor: nextCursorSchema }).meta({ id: 'OrderList' });

export const cancelOrderBodySchema = z.strictObject({
  reason: z.string().trim().min(1).max(500).default('cancelled by customer'),
});

export const orderCommandAcceptedSchema = z
  .object({ id: z.uuid(), status: orderStatusSchema, workflowId: z.string() })
  .meta({ id: 'OrderCommandAccepted' });

// ---- saga ----

export const sagaStateSchema = z.enum(SAGA_STATES);

const sagaRunSchema = z
  .object({
    workflowId: z.string(),
    runId: z.string(),
    workflowType: z.string(),
    /** Temporal's execution status: RUNNING, COMPLETED, FAILED, CANCELLED, TERMINATED, TIMED_OUT, CONTINUED_AS_NEW. */
    status: z.string(),
    sagaState: sagaStateSchema.nullable(),
    currentStep: z.string().nullable(),
    completedSteps: z.array(z.string()),
    compensations: z.array(z.object({ step: z.string(), outcome: z.enum(['COMPLETED', 'FAILED']), error: z.string().optional() })),
    failureReason: z.string().nullable(),
    /** false when the workflow could not be queried (no worker answering): steps are then unknown. */
    progressAvailable: z.boolean(),
    startTime: isoTime,
    closeTime: isoTime.nullable(),
    webUiUrl: z.url(),
  })
  .meta({ id: 'SagaRun' });

export const sagaSchema = sagaRunSchema
  .extend({
    /** The tccPayment child (stock and money): its own steps and compensations; null until createOrder starts it. */
    payment: sagaRunSchema.nullable(),
    /** The cancelOrder saga, when the order was asked to be cancelled. */
    cancellation: sagaRunSchema.nullable(),
  })
  .meta({ id: 'Saga' });
export type SagaRunResponse = z.infer<typeof sagaRunSchema>;
export type SagaResponse = z.infer<typeof sagaSchema>;
