/**
 * The order timeline: what the order service learned about each order from the event topics.
 * The consumer (workers/order-events-consumer.ts) writes it with recordTimelineEvents; the route
 * GET /orders/:id/events reads it.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { OrderDatabase } from '../../db/order/schema';
import { bearerJwtSecurity, principalOf, requireCustomerOrOperator } from '../shared/http/auth';
import { errorBodySchema } from '../shared/http/error-body';
import type { EventEnvelope } from '../../lib/events';
import { uuidInput } from '../shared/ids';
import { requireVisibleOrder } from './orders';

/** An event as consumed, with the topic it arrived on. */
export interface ConsumedEvent {
  event: EventEnvelope;
  topic: string;
}

/**
 * Applies events exactly once for `consumer`, all in one transaction: the inbox rows and the
 * timeline rows are written together, so a redelivered event (same event id) changes nothing.
 * Returns the ids of the events applied now; the others were duplicates (already in the inbox, or
 * repeated within `events`). Events that name no order are recorded in the inbox only.
 */
export async function recordTimelineEvents(db: Kysely<OrderDatabase>, consumer: string, events: readonly ConsumedEvent[]): Promise<Set<string>> {
  const unique = new Map<string, ConsumedEvent>();
  for (const consumed of events) if (!unique.has(consumed.event.eventId)) unique.set(consumed.event.eventId, consumed);
  if (unique.size === 0) return new Set();
  return db.transaction().execute(async (trx) => {
    const inserted = await trx
      .insertInto('processed_events')
      .values([...unique.values()].map(({ event }) => ({ consumer, event_id: event.eventId, event_type: event.eventType })))
      .onConflict((conflict) => conflict.columns(['consumer', 'event_id']).doNothing())
      .returning('event_id')
      .execute();
    const applied = new Set(inserted.map((row) => row.event_id));
    const timelineRows = [];
    for (const { event, topic } of unique.values()) {
      const orderId = event.payload.orderId;
      if (!applied.has(event.eventId) || typeof orderId !== 'string') continue;
      timelineRows.push({
        order_id: orderId,
        event_id: event.eventId,
        event_type: event.eventType,
        topic,
        payload: JSON.stringify(event.payload),
        occurred_at: event.timestamp,
        correlation_id: event.correlationId,
      });
    }
    if (timelineRows.length > 0) await trx.insertInto('order_events').values(timelineRows).execute();
    return applied;
  });
}

export interface TimelineEntry {
  eventId: string;
  eventType: string;
  topic: string;
  payload: Record<string, unknown>;
  occurredAt: string;
  receivedAt: string;
  correlationId: string | null;
}

/** An order's events in the order they happened (ties broken by arrival). */
export async function listTimeline(db: Kysely<OrderDatabase>, orderId: string): Promise<TimelineEntry[]> {
  const rows = await db
    .selectFrom('order_events')
    .select(['event_id', 'event_type', 'topic', 'payload', 'occurred_at', 'received_at', 'correlation_id'])
    .where('order_id', '=', orderId)
    .orderBy('occurred_at')
    .orderBy('id')
    .execute();
  return rows.map((row) => ({
    eventId: row.event_id,
    eventType: row.event_type,
    topic: row.topic,
    payload: row.payload,
    occurredAt: row.occurred_at.toISOString(),
    receivedAt: row.received_at.toISOString(),
    correlationId: row.correlation_id,
  }));
}

const timelineParamsSchema = z.object({ id: uuidInput.describe('Order id') });

const timelineEntrySchema = z.object({
  eventId: z.uuid(),
  eventType: z.string(),
  topic: z.string().describe('Kafka topic the event arrived on'),
  payload: z.record(z.string(), z.unknown()),
  occurredAt: z.iso.datetime({ offset: true }),
  receivedAt: z.iso.datetime({ offset: true }),
  correlationId: z.string().nullable().describe('The X-Request-Id of the request that caused the event; for an event that no request caused (an expired hold released by a sweeper), the order id'),
});

export const orderTimelineSchema = z.object({ orderId: z.uuid(), events: z.array(timelineEntrySchema) }).meta({ id: 'OrderTimeline' });

export interface OrderTimelineRoutesOptions {
  db: Kysely<OrderDatabase>;
}

/** GET /orders/:id/events. Register in the order app: `app.register(orderTimelineRoutes, { db })`. */
export const orderTimelineRoutes: FastifyPluginAsyncZod<OrderTimelineRoutesOptions> = async (app, { db }) => {
  app.get(
    '/orders/:id/events',
    {
      onRequest: requireCustomerOrOperator,
      schema: {
        tags: ['orders'],
        summary: "The order's event timeline, as consumed from Kafka, ordered by when each event occurred",
        description: "Same rule as GET /orders/{id}: another customer's order is 404 ORDER_NOT_FOUND.",
        security: bearerJwtSecurity,
        params: timelineParamsSchema,
        response: { 200: orderTimelineSchema, 400: errorBodySchema, 401: errorBodySchema, 403: errorBodySchema, 404: errorBodySchema },
      },
    },
    async (request) => {
      const { id } = request.params;
      await requireVisibleOrder(db, id, principalOf(request));
      return { orderId: id, events: await listTimeline(db, id) };
    },
  );
};
