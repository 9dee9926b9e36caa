/**
 * Smoke runs of the hot-path benchmarks (`./oms bench tcc`, `./oms bench outbox`, `./oms bench
 * floor`) with tiny loads: each scenario runs end to end and every cycle, event or request it
 * measures arrives. No timing is asserted.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createKafka } from '../../lib/kafka';
import { FLOOR_KINDS, runFloorBench } from '../bench/floor-bench';
import { runOutboxBench } from '../bench/outbox-bench';
import { runTccBench } from '../bench/tcc-bench';
import { startTestPaymentService, type TestPaymentService } from '../helpers/payment-service';
import { startTestProductService, type TestProductService } from '../helpers/product-service';
import { testConfig } from '../helpers/stack';

describe('hot-path benchmarks, smoke runs', () => {
  let products: TestProductService;
  let payments: TestPaymentService;

  beforeAll(async () => {
    [products, payments] = await Promise.all([startTestProductService(), startTestPaymentService()]);
  });
  afterAll(async () => {
    await products?.close();
    await payments?.close();
  });

  it('tcc: every cycle tries and confirms both branches', async () => {
    const result = await runTccBench({
      productUrl: products.url,
      paymentUrl: payments.url,
      operatorAuthorization: products.operator.authorization,
      workerCredential: products.config.WORKER_SERVICE_TOKEN,
      cycles: 12,
      clients: 3,
    });
    expect(result.failures).toEqual([]);
    expect(result.cycles).toBe(12);
    expect(result.calls.stockConfirm.count).toBe(12);
    expect(result.calls.paymentConfirm.count).toBe(12);
  });

  it('outbox: both relays drain their backlog and deliver every steady-rate event', { timeout: 180_000 }, async () => {
    const config = testConfig({ OUTBOX_BATCH_SIZE: '100' });
    const kafka = createKafka(config, 'test-bench-outbox');
    const result = await runOutboxBench({ adminUrl: inject('stack').PG_ADMIN_URL, kafka, relayConfig: config, backlog: 300, rate: 100, seconds: 1, naiveBacklog: 50, naiveSeconds: 1 });
    for (const relay of [result.ours, result.naive]) {
      expect(relay.drain.eventsPerSecond).toBeGreaterThan(0);
      expect(relay.steady.commitToKafka.count).toBe(100);
      expect(relay.steady.commitToConsumer.count).toBe(100);
    }
    expect(result.ours.drain.events).toBe(300);
    expect(result.naive.drain.events).toBe(50);
  });

  it('floor: every kind of request does its write, and the scratch database and topic are gone afterwards', { timeout: 120_000 }, async () => {
    const config = testConfig();
    const adminUrl = inject('stack').PG_ADMIN_URL;
    const result = await runFloorBench({ adminUrl, kafka: config, requests: 60, connections: 4 });
    expect(result.kinds.map(({ kind, requests }) => [kind, requests])).toEqual(FLOOR_KINDS.map((kind) => [kind, 60]));
    // A warm-up of 50 per kind comes first: statement and transaction each write a row, transaction an event row, event a message.
    expect(result.written).toEqual({ rows: 220, eventRows: 110, messages: 110 });
    for (const { cpu } of result.kinds) expect(cpu.map(({ name }) => name)).toEqual(['load generator', 'floor server']);

    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    const { rows } = await admin.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname LIKE 'oms_bench_floor_%'");
    await admin.end();
    expect(rows).toEqual([]);
    const kafkaAdmin = createKafka(config, 'test-bench-floor').admin();
    await kafkaAdmin.connect();
    const topics = await kafkaAdmin.listTopics();
    await kafkaAdmin.disconnect();
    expect(topics.filter((topic) => topic.startsWith('oms-bench-floor-'))).toEqual([]);
  });
});
