/**
 * Abuse limits, counted in Redis so they hold across every instance of a service:
 *
 * - per client address, on every route, in onRequest: before authentication, so a flood of bad
 *   tokens is counted like any other flood;
 * - per signed-in customer, in preParsing: after authentication (onRequest) has set
 *   `request.principal`, whatever address the customer comes from, and before the body is parsed
 *   or validated, so a customer over the limit costs no parsing and invalid requests count too. Operators and services are not counted (nothing
 *   keys them to one person, and the saga worker must never be throttled by its own shop).
 *
 * Not counted per address: routes with `config: { rateLimit: false }` (health and metrics, which
 * probes and Prometheus poll), routes that declare they require a service credential (their
 * OpenAPI `security` names the serviceToken scheme: the saga worker's TCC calls, admin), and the
 * addresses in RATE_LIMIT_EXEMPT_ADDRESSES. Over a limit: 429 RATE_LIMITED with Retry-After.
 * Redis unavailable: requests pass (Redis is a fast path everywhere in OMS, never a gate).
 */
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';
import { isIPv4 } from 'node:net';
import { ApiError } from '../errors';
import { errorBodySchema } from './error-body';
import { serviceTokenSecurity } from './service-auth';

export const RATE_LIMITED = 'RATE_LIMITED';
/** The OpenAPI security schemes that mean "requires the service credential". */
const serviceCredentialSchemes = new Set(serviceTokenSecurity.flatMap((requirement) => Object.keys(requirement)));

export interface RateLimitOptions {
  /** Keys are per service: `oms:rate-limit:<service>:<limit>:<who>`. */
  service: string;
  redis: Redis;
  perAddressPerMinute: number;
  perCustomerPerMinute: number;
  exemptAddresses: readonly string[];
}

type RateLimitCheck = ReturnType<FastifyInstance['createRateLimit']>;

/**
 * One @fastify/rate-limit registration per limit, each in its own scope: the plugin keeps one
 * store, key generator and maximum per registration, and `createRateLimit()` hands back the check
 * for our own hooks (so the 429 uses our error format and the two limits count independently).
 */
async function limiter(
  app: FastifyInstance,
  options: { redis: Redis; nameSpace: string; max: number; keyGenerator?: (request: FastifyRequest) => string },
): Promise<RateLimitCheck> {
  let check: RateLimitCheck | undefined;
  await app.register(async (scope) => {
    await scope.register(rateLimit, {
      global: false,
      redis: options.redis,
      nameSpace: options.nameSpace,
      max: options.max,
      timeWindow: 60_000,
      skipOnError: true,
      ...(options.keyGenerator ? { keyGenerator: options.keyGenerator } : {}),
    });
    check = scope.createRateLimit();
  });
  if (!check) throw new Error('rate limiter was not created');
  return check;
}

/** IPv4-mapped IPv6 (::ffff:10.0.0.1) is the IPv4 address, so an exemption list of IPv4 matches it. */
function plainAddress(ip: string): string {
  const mapped = /^::ffff:(.+)$/i.exec(ip)?.[1];
  return mapped && isIPv4(mapped) ? mapped : ip.toLowerCase();
}

function requiresServiceCredential(schema: unknown): boolean {
  const security = (schema as { security?: Record<string, unknown>[] } | undefined)?.security;
  return security?.some((requirement) => Object.keys(requirement).some((scheme) => serviceCredentialSchemes.has(scheme))) ?? false;
}

async function enforce(check: RateLimitCheck, request: FastifyRequest, reply: FastifyReply, limit: 'address' | 'customer'): Promise<void> {
  const result = await check(request);
  if (result.isAllowed) return;
  reply.header('x-ratelimit-limit', result.max);
  reply.header('x-ratelimit-remaining', result.remaining);
  reply.header('x-ratelimit-reset', result.ttlInSeconds);
  if (!result.isExceeded) return;
  const retryAfterSeconds = Math.max(1, result.ttlInSeconds);
  reply.header('retry-after', retryAfterSeconds);
  throw new ApiError(429, RATE_LIMITED, `too many requests; retry in ${retryAfterSeconds} s`, { limit, retryAfterSeconds });
}

export const rateLimitPlugin = fp(
  async (app: FastifyInstance, options: RateLimitOptions) => {
    const exempt = new Set(options.exemptAddresses.map(plainAddress));
    const nameSpace = (limit: string) => `oms:rate-limit:${options.service}:${limit}:`;
    const byAddress = await limiter(app, { redis: options.redis, nameSpace: nameSpace('address'), max: options.perAddressPerMinute });
    const byCustomer = await limiter(app, {
      redis: options.redis,
      nameSpace: nameSpace('customer'),
      max: options.perCustomerPerMinute,
      keyGenerator: (request) => (request.principal?.kind === 'customer' ? request.principal.customerId : ''),
    });

    // Every route a limit can refuse says so in OpenAPI.
    app.addHook('onRoute', (route) => {
      if (route.config?.rateLimit === false || requiresServiceCredential(route.schema)) return;
      const response = route.schema?.response as Record<string, unknown> | undefined;
      // A copy: response maps may be shared between routes.
      if (route.schema && response && !(429 in response)) route.schema.response = { ...response, 429: errorBodySchema };
    });
    app.addHook('onRequest', async (request, reply) => {
      if (request.routeOptions.config.rateLimit === false || requiresServiceCredential(request.routeOptions.schema)) return;
      if (exempt.has(plainAddress(request.ip))) return;
      await enforce(byAddress, request, reply, 'address');
    });
    app.addHook('preParsing', async (request, reply, payload) => {
      if (request.routeOptions.config.rateLimit !== false && request.principal?.kind === 'customer') await enforce(byCustomer, request, reply, 'customer');
      return payload;
    });
  },
  { name: 'oms-rate-limit' },
);
