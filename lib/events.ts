/**
 * Every OMS domain event: its payload schema, its aggregate type and the envelope it travels in.
 * Producers (the outbox writers) and consumers both parse with these schemas, so an event that one
 * side can write is an event the other side can read.
 */
import { z } from 'zod';
import { currencyCode, moneyString } from './money';

const money = moneyString;
const currency = currencyCode;
const isoTime = z.iso.datetime({ offset: true });
const id = z.string().min(1);

/** A product's catalogue version: 1 when created, one more at each price change. */
const catalogueVersion = z.number().int().positive();

const stockLine = z.object({ productId: id, quantity: z.number().int().positive() });

/** Payload schema and aggregate type of every event type, keyed by event type. */
export const EVENT_DEFINITIONS = {
  CUSTOMER_CREATED: { aggregateType: 'CUSTOMER', payload: z.object({ customerId: id, email: z.string(), status: z.enum(['ACTIVE', 'INACTIVE']) }) },
  ORDER_CREATED: {
    aggregateType: 'ORDER',
    payload: z.object({
      orderId: id,
      customerId: id,
      items: z.array(z.object({ productId: id, productName: z.string(), quantity: z.number().int().positive(), unitPrice: money })),
      totalAmount: money,
      currency,
    }),
  },
  ORDER_AWAITING_CONFIRMATION: { aggregateType: 'ORDER', payload: z.object({ orderId: id, holdExpiresAt: isoTime }) },
  /** The customer confirmed a manual checkout; the saga confirms the stock and captures the payment next. */
  ORDER_CONFIRMATION_REQUESTED: { aggregateType: 'ORDER', payload: z.object({ orderId: id }) },
  ORDER_CONFIRMED: { aggregateType: 'ORDER', payload: z.object({ orderId: id }) },
  ORDER_PAID: { aggregateType: 'ORDER', payload: z.object({ orderId: id, paymentId: id, amount: money, currency, transactionId: id }) },
  ORDER_FAILED: { aggregateType: 'ORDER', payload: z.object({ orderId: id, reason: z.string() }) },
  /** The order's saga failed and could not undo everything: it may still hold stock or money. */
  ORDER_COMPENSATION_FAILED: { aggregateType: 'ORDER', payload: z.object({ orderId: id, reason: z.string() }) },
  ORDER_CANCELLATION_REQUESTED: { aggregateType: 'ORDER', payload: z.object({ orderId: id, reason: z.string() }) },
  ORDER_CANCELLED: { aggregateType: 'ORDER', payload: z.object({ orderId: id, reason: z.string(), refundId: id.nullable() }) },

  /** name and version are absent on events written before the order service kept a catalogue read model. */
  PRODUCT_CREATED: {
    aggregateType: 'PRODUCT',
    payload: z.object({
      productId: id,
      sku: z.string(),
      name: z.string().optional(),
      price: money,
      currency,
      stockQuantity: z.number().int().nonnegative(),
      version: catalogueVersion.optional(),
    }),
  },
  /** A product's price as of `version`: consumers keep the highest version they have seen. */
  PRODUCT_PRICE_CHANGED: {
    aggregateType: 'PRODUCT',
    payload: z.object({ productId: id, sku: z.string(), name: z.string(), price: money, currency, version: catalogueVersion, previousPrice: money }),
  },
  STOCK_RESERVED: {
    aggregateType: 'STOCK_RESERVATION',
    payload: z.object({ orderId: id, reservations: z.array(stockLine.extend({ reservationId: id, expiresAt: isoTime })) }),
  },
  STOCK_RESERVATION_FAILED: {
    aggregateType: 'STOCK_RESERVATION',
    payload: z.object({
      orderId: id,
      productId: id,
      reason: z.string(),
      requestedQuantity: z.number().int(),
      availableQuantity: z.number().int(),
    }),
  },
  STOCK_CONFIRMED: { aggregateType: 'STOCK_RESERVATION', payload: z.object({ orderId: id, items: z.array(stockLine) }) },
  STOCK_RELEASED: {
    aggregateType: 'STOCK_RESERVATION',
    payload: z.object({ orderId: id, items: z.array(stockLine), reason: z.enum(['CANCELLED', 'EXPIRED', 'RESTOCKED']) }),
  },

  ACCOUNT_OPENED: { aggregateType: 'ACCOUNT', payload: z.object({ customerId: id, balance: money, currency }) },
  PAYMENT_RESERVED: {
    aggregateType: 'PAYMENT',
    payload: z.object({ reservationId: id, orderId: id, customerId: id, amount: money, currency, expiresAt: isoTime }),
  },
  PAYMENT_COMPLETED: {
    aggregateType: 'PAYMENT',
    payload: z.object({ paymentId: id, reservationId: id, orderId: id, amount: money, currency, transactionId: id, paymentMethod: z.string() }),
  },
  PAYMENT_FAILED: {
    aggregateType: 'PAYMENT',
    payload: z.object({ orderId: id, reservationId: id.nullable(), reason: z.string(), errorCode: z.string() }),
  },
  PAYMENT_CANCELLED: {
    aggregateType: 'PAYMENT',
    payload: z.object({ reservationId: id, orderId: id, amount: money, currency, reason: z.enum(['CANCELLED', 'EXPIRED']) }),
  },
  PAYMENT_REFUNDED: {
    aggregateType: 'PAYMENT',
    payload: z.object({ refundId: id, paymentId: id, orderId: id, amount: money, currency, reason: z.string().nullable() }),
  },
} as const;

export type EventType = keyof typeof EVENT_DEFINITIONS;
export type EventPayload<T extends EventType> = z.infer<(typeof EVENT_DEFINITIONS)[T]['payload']>;
export const EVENT_TYPES = Object.keys(EVENT_DEFINITIONS) as EventType[];

/** The event envelope (docs/design.md, Events and topics): what every Kafka message's value is. */
export const eventEnvelopeSchema = z.object({
  eventId: z.uuid(),
  eventType: z.enum(EVENT_TYPES as [EventType, ...EventType[]]),
  aggregateType: z.string().min(1),
  aggregateId: id,
  timestamp: isoTime,
  version: z.number().int().positive(),
  correlationId: z.string().nullable(),
  payload: z.record(z.string(), z.unknown()),
});

export type EventEnvelope = z.infer<typeof eventEnvelopeSchema>;

export class InvalidEventError extends Error {
  override name = 'InvalidEventError';
}

/** Parses a message value into an envelope whose payload matches its event type's schema. */
export function parseEvent(raw: unknown): EventEnvelope {
  const envelope = eventEnvelopeSchema.safeParse(raw);
  if (!envelope.success) throw new InvalidEventError(`not an OMS event envelope: ${z.prettifyError(envelope.error)}`);
  const payload = EVENT_DEFINITIONS[envelope.data.eventType].payload.safeParse(envelope.data.payload);
  if (!payload.success) throw new InvalidEventError(`${envelope.data.eventType} payload invalid: ${z.prettifyError(payload.error)}`);
  return { ...envelope.data, payload: payload.data };
}
