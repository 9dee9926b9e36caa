/**
 * Who is calling, for every OMS service. One onRequest hook reads `Authorization: Bearer <x>` and
 * sets request.principal:
 *
 *   - a static service credential (service-auth.ts), compared in constant time, is that caller with
 *     its scopes;
 *   - anything else must be a JWT from the identity provider, verified with jose: signature by a key
 *     from AUTH_JWKS_URL or AUTH_JWT_PUBLIC_KEY_FILE, an algorithm from AUTH_JWT_ALGORITHMS, `iss`
 *     = AUTH_JWT_ISSUER, `aud` containing AUTH_JWT_AUDIENCE, `exp` present and not passed, `sub`
 *     present. A token whose `scope` contains `oms:operator` is an operator (subject = `sub`);
 *     otherwise `sub` must be a customer id (a lower-case UUID) and the token is that customer.
 *
 * No header leaves the request anonymous (public routes answer it); a header that does not
 * authenticate is 401 on every route. Routes then declare what they need with a guard
 * (requireCustomerOrOperator, requireOperator, requireScope, requireAuthenticated): 401 when
 * anonymous, 403 FORBIDDEN when the caller may not.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import fp from 'fastify-plugin';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import { ConfigError, jwtKeySource, type Config } from '../../../lib/config';
import { ApiError, ForbiddenError, UnauthorizedError } from '../errors';
import { principalKey, type Principal } from './principal';
import { serviceCallers, serviceCredentialMatcher, type ServiceScope } from './service-auth';

/** The OAuth2 scope (in the JWT's space-separated `scope` claim) that makes its holder an operator. */
export const OPERATOR_SCOPE = 'oms:operator';

/** Clocks of the identity provider and of this host may differ a little; tokens are minutes long. */
const CLOCK_TOLERANCE_SECONDS = 30;

export interface Authenticator {
  /** The principal a bearer value stands for; throws UnauthorizedError when it stands for nobody. */
  authenticate(bearer: string): Promise<Principal>;
}

/** A token that authenticates nobody: 401 with the RFC 6750 challenge naming the reason. */
class InvalidTokenError extends UnauthorizedError {
  constructor(reason: string) {
    super(`invalid bearer token: ${reason}`);
  }
}

const customerId = z.uuid();

function principalFromClaims(payload: JWTPayload): Principal {
  const subject = payload.sub!;
  const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ') : [];
  if (scopes.includes(OPERATOR_SCOPE)) return { kind: 'operator', subject };
  // Canonical form only, so the subject can be compared with stored ids as it is.
  if (!customerId.safeParse(subject).success || subject !== subject.toLowerCase()) {
    throw new InvalidTokenError(`"sub" must be a customer id (a lower-case UUID) unless "scope" contains ${OPERATOR_SCOPE}`);
  }
  return { kind: 'customer', customerId: subject, subject };
}

/** Why jose refused a token, in words a client can act on. */
function refusal(error: InstanceType<typeof joseErrors.JOSEError>): string {
  if (error instanceof joseErrors.JWTExpired) return 'expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) return `"${error.claim}" ${error.reason === 'missing' ? 'is missing' : 'is not accepted'}`;
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'signature algorithm not accepted';
  if (error instanceof joseErrors.JWSSignatureVerificationFailed || error instanceof joseErrors.JWKSNoMatchingKey) return 'signature does not verify';
  return 'not a well-formed signed JWT';
}

/** The key source failed (JWKS endpoint down or answering nonsense): our problem, not the caller's. */
function isKeySourceFailure(error: unknown): boolean {
  if (!(error instanceof joseErrors.JOSEError)) return true;
  return error instanceof joseErrors.JWKSTimeout || error instanceof joseErrors.JWKSInvalid || error.code === 'ERR_JOSE_GENERIC';
}

/** Algorithms a public key can verify, so a key that fits none of AUTH_JWT_ALGORITHMS stops start-up. */
function algorithmsFor(key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case 'ec':
      return [{ prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' }[key.asymmetricKeyDetails?.namedCurve ?? ''] ?? ''];
    case 'rsa':
      return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
    case 'rsa-pss':
      return ['PS256', 'PS384', 'PS512'];
    case 'ed25519':
      return ['EdDSA'];
    default:
      return [];
  }
}

async function publicKeyFromFile(path: string, algorithms: readonly string[]): Promise<KeyObject> {
  let key: KeyObject;
  try {
    key = createPublicKey(await readFile(path, 'utf8'));
  } catch (error) {
    throw new ConfigError(`Invalid configuration:\n  AUTH_JWT_PUBLIC_KEY_FILE: ${path} is not a readable PEM public key (${(error as Error).message})`);
  }
  const usable = algorithmsFor(key);
  if (!algorithms.some((algorithm) => usable.includes(algorithm))) {
    throw new ConfigError(
      `Invalid configuration:\n  AUTH_JWT_ALGORITHMS: none of ${algorithms.join(', ')} fits the ${key.asymmetricKeyType} key in AUTH_JWT_PUBLIC_KEY_FILE (it verifies ${usable.join(', ') || 'nothing we accept'})`,
    );
  }
  return key;
}

/** Builds the authenticator from configuration; reads the public key file once, at start-up. */
export async function createAuthenticator(
  config: Pick<Config, 'AUTH_JWKS_URL' | 'AUTH_JWT_PUBLIC_KEY_FILE' | 'AUTH_JWT_ISSUER' | 'AUTH_JWT_AUDIENCE' | 'AUTH_JWT_ALGORITHMS' | 'WORKER_SERVICE_TOKEN'>,
): Promise<Authenticator> {
  const source = jwtKeySource(config);
  // jose caches the JWKS, refetches on an unknown `kid` (at most every cooldown) and times out slow answers.
  const key: KeyObject | JWTVerifyGetKey =
    source.kind === 'jwks' ? createRemoteJWKSet(new URL(source.url)) : await publicKeyFromFile(source.path, config.AUTH_JWT_ALGORITHMS);
  const verifyOptions = {
    issuer: config.AUTH_JWT_ISSUER,
    audience: config.AUTH_JWT_AUDIENCE,
    algorithms: [...config.AUTH_JWT_ALGORITHMS],
    requiredClaims: ['exp', 'sub'],
    clockTolerance: CLOCK_TOLERANCE_SECONDS,
  };
  const matchServiceCredential = serviceCredentialMatcher(serviceCallers(config));
  const verified = new VerifiedTokens();

  return {
    async authenticate(bearer) {
      const service = matchServiceCredential(bearer);
      if (service) return service;
      const known = verified.principalOf(bearer);
      if (known) return known;
      let payload: JWTPayload;
      try {
        // Two overloads (key or key function); the options are the same.
        ({ payload } = typeof key === 'function' ? await jwtVerify(bearer, key, verifyOptions) : await jwtVerify(bearer, key, verifyOptions));
      } catch (error) {
        if (isKeySourceFailure(error)) {
          throw new ApiError(503, 'AUTH_UNAVAILABLE', 'the keys that verify bearer tokens cannot be fetched; retry later');
        }
        throw new InvalidTokenError(refusal(error as InstanceType<typeof joseErrors.JOSEError>));
      }
      const principal = principalFromClaims(payload);
      verified.remember(bearer, principal, payload.exp!);
      return principal;
    },
  };
}

/**
 * Tokens whose signature and claims were verified, until they expire. A client sends its token
 * with every request, and checking an ES256 signature is the costliest thing an order request did
 * in Node (a tenth of its CPU); a verified token stays valid until its `exp` whatever the server
 * does, so remembering it until then accepts exactly what verifying it again would. Bounded: past
 * MAX entries the oldest is forgotten (it is only verified again).
 */
class VerifiedTokens {
  private static readonly MAX = 10_000;
  private readonly principals = new Map<string, { principal: Principal; validUntilMs: number }>();

  principalOf(token: string): Principal | undefined {
    const entry = this.principals.get(token);
    if (!entry) return undefined;
    if (Date.now() < entry.validUntilMs) return entry.principal;
    this.principals.delete(token);
    return undefined;
  }

  remember(token: string, principal: Principal, expSeconds: number): void {
    if (this.principals.size >= VerifiedTokens.MAX) this.principals.delete(this.principals.keys().next().value!);
    this.principals.set(token, { principal, validUntilMs: (expSeconds + CLOCK_TOLERANCE_SECONDS) * 1000 });
  }
}

// ---- the hook ----

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route reads the Authorization header itself (GET /metrics and METRICS_BEARER_TOKEN): the hook leaves it alone. */
    checksOwnAuthorization?: boolean;
  }
}

// RFC 6750 section 2.1: the b64token syntax.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

function challenge(reply: FastifyReply, error?: 'invalid_token' | 'invalid_request'): void {
  reply.header('www-authenticate', error ? `Bearer realm="oms", error="${error}"` : 'Bearer realm="oms"');
}

/** Sets request.principal from the Authorization header; register once per app, before the routes. */
export const authenticationPlugin = fp(
  (app, { authenticator }: { authenticator: Authenticator }, done) => {
    app.decorateRequest('principal', undefined);
    app.addHook('onRequest', async (request, reply) => {
      const header = request.headers.authorization;
      if (header === undefined || request.routeOptions.config.checksOwnAuthorization) return;
      const bearer = BEARER.exec(header)?.[1];
      if (!bearer) {
        challenge(reply, 'invalid_request');
        throw new UnauthorizedError('the Authorization header must be "Bearer <token>"');
      }
      try {
        request.principal = await authenticator.authenticate(bearer);
      } catch (error) {
        if (error instanceof UnauthorizedError) challenge(reply, 'invalid_token');
        throw error;
      }
      // Every later log line of this request says who made it.
      request.log = request.log.child({ principal: principalKey(request.principal) });
    });
    done();
  },
  { name: 'oms-authentication' },
);

// ---- guards: route-level onRequest hooks ----

function authenticated(request: FastifyRequest, reply: FastifyReply): Principal {
  if (!request.principal) {
    challenge(reply);
    throw new UnauthorizedError();
  }
  return request.principal;
}

/** Any authenticated caller; the handler decides further (e.g. a customer reads only itself). */
export const requireAuthenticated: onRequestAsyncHookHandler = async (request, reply) => {
  authenticated(request, reply);
};

/** The order API: customers (for themselves) and operators. Service credentials have no business here. */
export const requireCustomerOrOperator: onRequestAsyncHookHandler = async (request, reply) => {
  if (authenticated(request, reply).kind === 'service') throw new ForbiddenError('this endpoint is for customers and operators');
};

/** Administration: creating customers, products and accounts, refunds, reading every payment. */
export const requireOperator: onRequestAsyncHookHandler = async (request, reply) => {
  if (authenticated(request, reply).kind !== 'operator') throw new ForbiddenError(`only an operator (a token with scope ${OPERATOR_SCOPE}) may do this`);
};

/** Internal endpoints: a service credential holding `scope`, or an operator (who holds every scope). */
export function requireScope(scope: ServiceScope): onRequestAsyncHookHandler {
  return async (request, reply) => {
    const principal = authenticated(request, reply);
    if (principal.kind === 'operator' || (principal.kind === 'service' && principal.scopes.includes(scope))) return;
    throw new ForbiddenError(`this endpoint needs scope ${scope}`);
  };
}

/** The principal a guard already admitted (a handler behind no guard gets 401). */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new UnauthorizedError();
  return request.principal;
}

/** Customers act for themselves only, operators for everyone, service callers for no customer. */
export function mayActForCustomer(principal: Principal, customerId: string): boolean {
  return principal.kind === 'operator' || (principal.kind === 'customer' && principal.customerId === customerId);
}

// ---- OpenAPI ----

/** The security schemes every service's OpenAPI document declares (shown in /docs). */
export const securitySchemes = {
  bearerJwt: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description:
      `Access token from the identity provider (iss AUTH_JWT_ISSUER, aud AUTH_JWT_AUDIENCE). A customer's token has the customer id as "sub"; ` +
      `an operator's has "${OPERATOR_SCOPE}" in "scope". Development: ./oms token --customer <id> | --operator`,
  },
  serviceCredential: {
    type: 'http',
    scheme: 'bearer',
    description:
      "An OMS process's own static credential (the saga worker's WORKER_SERVICE_TOKEN), limited to its scopes: " +
      'stock:reserve (stock try/confirm/cancel), stock:restock, payments:reserve (payment try/confirm/cancel), payments:refund-order',
  },
} as const;

type SecurityRequirements = { [scheme in keyof typeof securitySchemes]?: string[] }[];

/** Routes for customers and operators. */
export const bearerJwtSecurity: SecurityRequirements = [{ bearerJwt: [] }];
/** Internal routes: a service credential with the route's scope, or an operator token. */
export const serviceCredentialSecurity: SecurityRequirements = [{ serviceCredential: [] }, { bearerJwt: [] }];
