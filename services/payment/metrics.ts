/** The payment participant's own metrics, on the process registry served at GET /metrics. */
import { Counter, type Registry } from 'prom-client';
import { ApiError } from '../shared/errors';

export type TccOperation = 'try' | 'confirm' | 'cancel' | 'expire' | 'refund';

export interface PaymentMetrics {
  /** outcome: applied (state changed), noop (idempotent repeat), or the refusal's error code. */
  tcc: Counter<'participant' | 'operation' | 'outcome'>;
}

export function createPaymentMetrics(registry: Registry): PaymentMetrics {
  const name = 'oms_tcc_operations_total';
  const existing = registry.getSingleMetric(name) as Counter<'participant' | 'operation' | 'outcome'> | undefined;
  return {
    tcc:
      existing ??
      new Counter({
        name,
        help: 'TCC operations by participant, operation and outcome',
        labelNames: ['participant', 'operation', 'outcome'],
        registers: [registry],
      }),
  };
}

/** Runs one operation and counts its outcome; errors other than API refusals count as "error". */
export async function counted<T>(metrics: PaymentMetrics, operation: TccOperation, run: () => Promise<T>, applied: (result: T) => boolean): Promise<T> {
  try {
    const result = await run();
    metrics.tcc.inc({ participant: 'payment', operation, outcome: applied(result) ? 'applied' : 'noop' });
    return result;
  } catch (error) {
    metrics.tcc.inc({ participant: 'payment', operation, outcome: error instanceof ApiError ? error.code : 'error' });
    throw error;
  }
}
