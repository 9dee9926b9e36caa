/** Prometheus metrics of the outbox relay and of event consumers, registered on the worker's registry. */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { PartitionLag } from '../../lib/kafka';

export function createOutboxMetrics(registry: Registry) {
  return {
    pendingCount: new Gauge({
      name: 'oms_outbox_pending_count',
      help: 'Outbox rows waiting to be published, per service database',
      labelNames: ['db'] as const,
      registers: [registry],
    }),
    published: new Counter({
      name: 'oms_outbox_published_total',
      help: 'Outbox events published to Kafka',
      labelNames: ['db', 'topic'] as const,
      registers: [registry],
    }),
    failed: new Counter({
      name: 'oms_outbox_failed_total',
      help: 'Outbox events that exhausted their retries and went to the dead letter topic',
      labelNames: ['db'] as const,
      registers: [registry],
    }),
    publishErrors: new Counter({
      name: 'oms_outbox_publish_errors_total',
      help: 'Failed publish attempts, by kind (rejected: the event; unavailable: the broker)',
      labelNames: ['db', 'kind'] as const,
      registers: [registry],
    }),
    lastSuccess: new Gauge({
      name: 'oms_outbox_relay_last_success_timestamp_seconds',
      help: 'When this process last completed a relay pass holding the database publisher lock (Unix seconds); set to the start time when the worker starts',
      labelNames: ['db'] as const,
      registers: [registry],
    }),
    publishDuration: new Histogram({
      name: 'oms_outbox_publish_duration_seconds',
      help: 'Time to publish one batch of outbox events and have the broker acknowledge it (acks=all)',
      labelNames: ['db'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers: [registry],
    }),
  };
}

export type OutboxMetrics = ReturnType<typeof createOutboxMetrics>;

export interface ConsumerLagSource {
  group: string;
  /** The group's lag per partition, asked of the broker at each scrape. */
  measure: () => Promise<PartitionLag[]>;
}

/**
 * Event consumer metrics. event_type is the parsed event's type, or `unparseable` for a message
 * that is not an event (the header is not trusted as a label: its values are unbounded). The lag
 * of each group in `lagOf` is read from the broker when scraped, so a stuck or stopped consumer
 * shows its growing lag instead of the last value it reported.
 */
export function createConsumerMetrics(registry: Registry, lagOf: readonly ConsumerLagSource[] = []) {
  return {
    lag: new Gauge({
      name: 'oms_consumer_lag',
      help: 'Messages between a consumer group committed offset and the partition end (high watermark), from the broker',
      labelNames: ['group', 'topic', 'partition'] as const,
      registers: [registry],
      async collect() {
        this.reset();
        for (const { group, measure } of lagOf) {
          // Kafka unreachable: no lag series this scrape (ServiceDown and the relay alerts say why).
          const lags = await measure().catch(() => []);
          for (const { topic, partition, lag } of lags) this.set({ group, topic, partition: String(partition) }, lag);
        }
      },
    }),
    received: new Counter({
      name: 'oms_events_received_total',
      help: 'Messages a consumer received, by group, topic and event type (redeliveries included)',
      labelNames: ['group', 'topic', 'event_type'] as const,
      registers: [registry],
    }),
    processed: new Counter({
      name: 'oms_events_processed_total',
      help: 'Messages a consumer finished with and committed, by outcome (applied, duplicate, dead_lettered)',
      labelNames: ['group', 'event_type', 'outcome'] as const,
      registers: [registry],
    }),
    lastSuccess: new Gauge({
      name: 'oms_consumer_last_success_timestamp_seconds',
      help: 'When the consumer group last finished a batch or fetched with nothing left to do (Unix seconds); set to the start time when it starts',
      labelNames: ['group'] as const,
      registers: [registry],
    }),
    processingDuration: new Histogram({
      name: 'oms_event_processing_duration_seconds',
      help: 'Time from receiving a message to committing past it (retries and dead-lettering included)',
      labelNames: ['group', 'event_type', 'outcome'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 10],
      registers: [registry],
    }),
  };
}

export type ConsumerMetrics = ReturnType<typeof createConsumerMetrics>;
