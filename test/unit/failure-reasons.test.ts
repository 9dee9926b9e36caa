import { describe, expect, it } from 'vitest';
import { customerFailureReason, ORDER_FAILED_FALLBACK } from '../../workflows/order-contract';

const mine = '0d9a3c1e-0000-4000-8000-00000000a001';
const other = '0d9a3c1e-0000-4000-8000-00000000a002';

describe('customerFailureReason', () => {
  it('keeps the decision and drops balances', () => {
    expect(customerFailureReason('InsufficientFunds: not enough available funds: 10.00 required, 5.00 available', [mine])).toBe(
      'InsufficientFunds: the payment was declined for insufficient funds',
    );
  });

  it("names the order's own short products, never a stock level", () => {
    const reason = customerFailureReason(`InsufficientStock: insufficient stock for product ${mine}: requested 50, available 5`, [mine, other]);
    expect(reason).toBe(`InsufficientStock: not enough stock for product ${mine}`);
    expect(reason).not.toMatch(/50|available 5/);
  });

  it('names no product that is not in the order', () => {
    expect(customerFailureReason(`InsufficientStock: insufficient stock for product ${other}: requested 1, available 0`, [mine])).toBe(
      'InsufficientStock: not enough stock for the ordered products',
    );
  });

  it('says nothing of internal faults: a participant down, a defect, an unknown type', () => {
    for (const reason of [
      'fetch failed',
      'ParticipantUnavailableError: POST /payments/try answered 503: {"error":{"code":"INTERNAL_ERROR"}}',
      'ParticipantRejected: reserve stock: participant answered 401 UNAUTHORIZED',
      'Error: connect ECONNREFUSED 10.0.0.7:5432',
    ]) {
      expect(customerFailureReason(reason, [mine])).toBe(ORDER_FAILED_FALLBACK);
    }
  });

  it('maps an already customer-facing reason to itself', () => {
    const once = customerFailureReason('CheckoutExpired: checkout not confirmed within 600s', []);
    expect(once).toBe('CheckoutExpired: the checkout was not confirmed in time');
    expect(customerFailureReason(once, [])).toBe(once);
  });
});
