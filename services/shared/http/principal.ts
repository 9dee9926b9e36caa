/**
 * Who is calling: set on the request by the authentication hook (services/shared/http/auth.ts) and
 * read by authorization checks, rate limits and logs. Unset means an anonymous caller.
 */
export type Principal =
  /** A signed-in customer: the token's subject is the customer id. */
  | { kind: 'customer'; customerId: string; subject: string }
  /** A person who operates the shop: sees and acts on everything. */
  | { kind: 'operator'; subject: string }
  /** Another OMS process (the saga worker, ...) holding a credential limited to some scopes. */
  | { kind: 'service'; name: string; scopes: readonly string[] };

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

/** A stable name for the caller, for per-caller keys and log lines: customer:<id>, operator:<sub>, service:<name>, anonymous. */
export function principalKey(principal: Principal | undefined): string {
  if (!principal) return 'anonymous';
  switch (principal.kind) {
    case 'customer':
      return `customer:${principal.customerId}`;
    case 'operator':
      return `operator:${principal.subject}`;
    case 'service':
      return `service:${principal.name}`;
  }
}
