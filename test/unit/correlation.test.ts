import { describe, expect, it } from 'vitest';
import { currentCorrelationId, usableRequestId, withCorrelationId } from '../../lib/correlation';

describe('correlation id', () => {
  it("keeps a client's request id only when it is a plain token of 8 to 100 characters", () => {
    for (const usable of ['0d9a3c1e-0000-4000-8000-00000000c001', 'support-1234', 'trace.01HZY:span-2', 'a'.repeat(100)]) expect(usableRequestId(usable)).toBe(usable);
    for (const unusable of [undefined, '', 'short', 'a'.repeat(101), 'has spaces in it', 'line\nbreak-123', '-leading-dash', ['two', 'values']]) {
      expect(usableRequestId(unusable)).toBeUndefined();
    }
  });

  it('is the innermost id set, through awaits, and nothing outside', async () => {
    expect(currentCorrelationId()).toBeUndefined();
    await withCorrelationId('outer-request', async () => {
      await Promise.resolve();
      expect(currentCorrelationId()).toBe('outer-request');
      await withCorrelationId('inner-request', async () => {
        await new Promise((resolve) => setTimeout(resolve, 1));
        expect(currentCorrelationId()).toBe('inner-request');
      });
      // No id given: the current one stays.
      withCorrelationId(null, () => expect(currentCorrelationId()).toBe('outer-request'));
    });
    expect(currentCorrelationId()).toBeUndefined();
  });
});
