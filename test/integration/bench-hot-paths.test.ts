/**
 * Smoke runs of the hot-path benchmarks (`./oms bench tcc`, `./oms bench outbox`) with tiny loads:
 * each scenario runs end to end and every cycle or event it measures arrives. No timing is asserted.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createKafka } from '../../lib/kafka';
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
});
