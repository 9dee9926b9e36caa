/**
 * Activity interceptor: an activity runs with its saga's correlation id (the header that
 * workflows/correlation-interceptor.ts adds) as the current correlation id, so the events it writes
 * and its calls to the participants carry it, and so do its log lines.
 */
import { defaultPayloadConverter } from '@temporalio/common';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { withCorrelationId } from '../lib/correlation';
import { CORRELATION_ID_HEADER } from '../workflows/order-contract';

export const correlationActivityInterceptor: ActivityInterceptorsFactory = () => {
  let correlationId: string | undefined;
  return {
    inbound: {
      execute(input, next) {
        const header = input.headers[CORRELATION_ID_HEADER];
        const value: unknown = header ? defaultPayloadConverter.fromPayload(header) : undefined;
        correlationId = typeof value === 'string' ? value : undefined;
        return withCorrelationId(correlationId, () => next(input));
      },
    },
    outbound: {
      getLogAttributes(input, next) {
        return next(correlationId ? { ...input, correlationId } : input);
      },
    },
  };
};
