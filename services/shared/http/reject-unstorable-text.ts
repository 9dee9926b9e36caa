/**
 * Text PostgreSQL cannot store would otherwise be accepted and fail later: a NUL (U+0000) cannot
 * be stored in text, and a lone UTF-16 surrogate (half of a pair, e.g. "\ud800" in JSON) cannot be
 * stored in jsonb, so an event carrying it fails at every attempt of the saga that writes it while
 * the request that sent it was answered 202. One hook for every route of every service refuses
 * both up front as the client's mistake: 400 VALIDATION_ERROR naming where it was.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { ApiError } from '../errors';

// In a unicode regex a well-formed pair is one code point, so only an unpaired half matches.
const LONE_SURROGATE = /\p{Surrogate}/u;

function unstorable(text: string): string | undefined {
  if (text.includes('\0')) return 'must not contain NUL characters';
  if (LONE_SURROGATE.test(text)) return 'must not contain unpaired UTF-16 surrogates';
  return undefined;
}

function findUnstorable(value: unknown, path: string): { path: string; message: string } | undefined {
  if (typeof value === 'string') {
    const message = unstorable(value);
    return message ? { path: path || '/', message } : undefined;
  }
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) {
      const found = findUnstorable(item, `${path}/${index}`);
      if (found) return found;
    }
    return undefined;
  }
  if (value && typeof value === 'object') {
    for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
      const found = findUnstorable(key, `${path}/${key}`) ?? findUnstorable(item, `${path}/${key}`);
      if (found) return found;
    }
  }
  return undefined;
}

export const rejectUnstorableTextPlugin = fp(
  (app: FastifyInstance) => {
    app.addHook('preValidation', async (request) => {
      for (const [part, value] of [['body', request.body], ['querystring', request.query], ['params', request.params]] as const) {
        const found = findUnstorable(value, '');
        if (found) throw new ApiError(400, 'VALIDATION_ERROR', `invalid request ${part}`, { issues: [found] });
      }
    });
  },
  { name: 'oms-reject-unstorable-text' },
);
