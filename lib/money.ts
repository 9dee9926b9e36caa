/**
 * Money is integer minor units inside OMS (cents for every currency we accept, all of which have
 * two decimals) and an exact decimal string ("12.50") at the API and in events. Never a float.
 */
import { z } from 'zod';

/** Currencies with two minor digits; others would need a different scale. */
export const SUPPORTED_CURRENCIES = ['USD', 'EUR', 'GBP', 'CHF', 'CAD', 'AUD'] as const;
export const currencyCode = z.enum(SUPPORTED_CURRENCIES);

/** How events and responses show an amount: always two decimals. */
export const moneyString = z.string().regex(/^\d+\.\d{2}$/, 'a decimal amount with exactly two decimals');

/** The largest amount OMS takes anywhere (an order total, a payment): 100 billion major units, far below 2^53. */
export const MAX_AMOUNT_MINOR = 10 ** 13;

/**
 * An amount a client sends: a decimal string (or a JSON number written the same way) with at most
 * two decimals, parsed exactly into minor units. "12.345" and 1e-7 are refused, not rounded.
 */
export const moneyInput = z
  .union([z.string(), z.number()])
  .transform((value, ctx) => {
    const text = typeof value === 'number' ? String(value) : value.trim();
    const match = /^(\d{1,13})(?:\.(\d{1,2}))?$/.exec(text);
    if (!match) {
      ctx.addIssue({ code: 'custom', message: 'must be a non-negative decimal amount with at most two decimals, e.g. "12.50"' });
      return z.NEVER;
    }
    const minor = Number(match[1]) * 100 + Number((match[2] ?? '').padEnd(2, '0'));
    if (minor > MAX_AMOUNT_MINOR) {
      ctx.addIssue({ code: 'custom', message: 'amount too large' });
      return z.NEVER;
    }
    return minor;
  })
  .meta({ description: 'Decimal amount with at most two decimals, e.g. "12.50"', example: '12.50' });

export const positiveMoneyInput = moneyInput.refine((minor) => minor > 0, 'must be greater than zero');

/** Minor units to the exact decimal string the API shows. */
export function formatMinor(minor: number): string {
  if (!Number.isSafeInteger(minor)) throw new RangeError(`not an integer amount of minor units: ${minor}`);
  const sign = minor < 0 ? '-' : '';
  const abs = Math.abs(minor);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}
