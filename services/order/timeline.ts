/**
 * The order timeline: what the order service learned about each order from the event topics.
 * The consumer (workers/order-events-consumer.ts) writes it with recordTimelineEvent; the route
 * GET /orders/:id/events reads it.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { OrderDatabase } from '../../db/order/schema';
import { NotFoundError } from '../shared/errors';
import { errorBodySchema } from '../shared/http/error-body';
import type { EventEnvelope } from '../shared/events';
import { uuidInput } from '../shared/ids';

/**
 * Applies one event exactly once for `consumer`: the inbox row and the timeline row are written in
 * one transaction, so a redelivered event (same event id) changes nothing. Returns false for a
 * duplicate. Events that name no order are recorded in the inbox only.
 */
export async function recordTimelineEvent(db: Kysely<OrderDatabase>, consumer: string, event: EventEnvelope, topic: string): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const first = await trx
      .insertInto('processed_events')
      .values({ consumer, event_id: event.eventId, event_type: event.eventType })
      .onConflict((conflict) => conflict.columns(['consumer', 'event_id']).doNothing())
      .returning('event_id')
      .executeTakeFirst();
    if (!first) return false;
    const orderId = event.payload.orderId;
    if (typeof orderId === 'string') {
      await trx
        .insertInto('order_events')
        .values({
          order_id: orderId,
          event_id: event.eventId,
          event_type: event.eventType,
          topic,
          payload: JSON.stringify(event.payload),
          occurred_at: event.timestamp,
        })
        .execute();
    }
    return true;
  });
}

export interface TimelineEntry {
  eventId: string;
  eventType: string;
  topic: string;
  payload: Record<string, unknown>;
  occurredAt: string;
  receivedAt: string;
}

/** An order's events in the order they happened (ties broken by arrival). */
export async function listTimeline(db: Kysely<OrderDatabase>, orderId: string): Promise<TimelineEntry[]> {
  const rows = await db
    .selectFrom('order_events')
    .select(['event_id', 'event_type', 'topic', 'payload', 'occurred_at', 'received_at'])
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
      schema: {
        tags: ['orders'],
        summary: "The order's event timeline, as consumed from Kafka, ordered by when each event occurred",
        params: timelineParamsSchema,
        response: { 200: orderTimelineSchema, 400: errorBodySchema, 404: errorBodySchema },
      },
    },
    async (request) => {
      const { id } = request.params;
      const order = await db.selectFrom('orders').select('id').where('id', '=', id).executeTakeFirst();
      if (!order) throw new NotFoundError('order', id);
      return { orderId: id, events: await listTimeline(db, id) };
    },
  );
};
