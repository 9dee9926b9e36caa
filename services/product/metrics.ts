/** Product service metrics, registered on the process's registry. */
import { Counter, type Registry } from 'prom-client';

export type TccOperationName = 'try' | 'confirm' | 'cancel' | 'restock' | 'expire';
/**
 * applied: the operation changed stock; noop: a repeat that changed nothing; barrier: a cancel
 * before its try recorded the barrier; refused: a 4xx decision; error: a 5xx fault.
 */
export type TccOutcome = 'applied' | 'noop' | 'barrier' | 'refused' | 'error';

export interface ProductMetrics {
  tccOperations: Counter<'participant' | 'operation' | 'outcome'>;
}

export function createProductMetrics(registry: Registry): ProductMetrics {
  return {
    tccOperations: new Counter({
      name: 'oms_tcc_operations_total',
      help: 'TCC participant operations by participant, operation and outcome',
      labelNames: ['participant', 'operation', 'outcome'],
      registers: [registry],
    }),
  };
}
