/** Internal endpoints (TCC, restock, refunds, admin) answer only callers holding the service token. */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { onRequestAsyncHookHandler } from 'fastify';
import { UnauthorizedError } from '../errors';

const digest = (value: string) => createHash('sha256').update(value).digest();

/** An onRequest hook; attach it to a route or an encapsulated plugin of internal routes. */
export function requireServiceToken(token: string): onRequestAsyncHookHandler {
  const expected = digest(token);
  return async (request) => {
    const header = request.headers.authorization;
    const presented = header?.startsWith('Bearer ') ? header.slice('Bearer '.length).trim() : undefined;
    // Compare digests of equal length in constant time, so response timing says nothing about the token.
    if (!presented || !timingSafeEqual(digest(presented), expected)) throw new UnauthorizedError();
  };
}

/** OpenAPI security requirement for internal routes. */
export const serviceTokenSecurity = [{ serviceToken: [] }];
