/**
 * PostgreSQL cannot store NUL (U+0000) in text, so a NUL anywhere in a request would otherwise
 * reach the database and come back as a 500. One hook for every route of every service refuses it
 * up front as the client's mistake: 400 VALIDATION_ERROR naming where it was.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { ApiError } from '../errors';

function findNul(value: unknown, path: string): string | undefined {
  if (typeof value === 'string') return value.includes('\0') ? path || '/' : undefined;
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) {
      const found = findNul(item, `${path}/${index}`);
      if (found) return found;
    }
    return undefined;
  }
  if (value && typeof value === 'object') {
    for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
      const found = findNul(key, `${path}/${key}`) ?? findNul(item, `${path}/${key}`);
      if (found) return found;
    }
  }
  return undefined;
}

export const rejectNulPlugin = fp(
  (app: FastifyInstance) => {
    app.addHook('preValidation', async (request) => {
      for (const [part, value] of [['body', request.body], ['querystring', request.query], ['params', request.params]] as const) {
        const path = findNul(value, '');
        if (path) {
          throw new ApiError(400, 'VALIDATION_ERROR', `invalid request ${part}`, { issues: [{ path, message: 'must not contain NUL characters' }] });
        }
      }
    });
  },
  { name: 'oms-reject-nul' },
);
