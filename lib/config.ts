/**
 * Configuration for every OMS process, parsed once from the environment with zod and frozen.
 * A bad value stops the process with a message naming the variable. Defaults are the local
 * no-Docker stack started by `./oms up`.
 */
import { accessSync, constants } from 'node:fs';
import { isIP } from 'node:net';
import { basename } from 'node:path';
import { z } from 'zod';

const url = z.string().url();
const port = z.coerce.number().int().min(1).max(65_535);
const positiveInt = z.coerce.number().int().positive();
/** "true"/"false" or "1"/"0" (z.coerce.boolean would read "false" as true). */
const flag = z.enum(['true', 'false', '1', '0']).transform((value) => value === 'true' || value === '1');
/** Comma-separated IP addresses (v4 or v6), e.g. "10.0.0.5,10.0.0.6"; empty for none. */
const ipList = z
  .string()
  .transform((value) => value.split(',').map((item) => item.trim()).filter(Boolean))
  .pipe(z.array(z.union([z.ipv4(), z.ipv6()])));
/**
 * Fastify's trustProxy: "false" (the socket's address is the client's) or the comma-separated
 * addresses / CIDRs of the proxies whose X-Forwarded-For is believed.
 */
const trustProxy = z
  .string()
  .transform((value, context): false | string => {
    const trimmed = value.trim();
    if (trimmed === '' || trimmed === 'false') return false;
    const entries = trimmed.split(',').map((item) => item.trim());
    const valid = entries.every((entry) => {
      const [address = '', prefix, ...rest] = entry.split('/');
      const isAddress = z.union([z.ipv4(), z.ipv6()]).safeParse(address).success;
      return isAddress && rest.length === 0 && (prefix === undefined || /^\d{1,3}$/.test(prefix));
    });
    if (!valid) {
      context.addIssue({ code: 'custom', message: 'expected "false" or comma-separated proxy addresses/CIDRs' });
      return z.NEVER;
    }
    return entries.join(',');
  });

// ---------------------------------------------------------------------------------------------
// Database roles, database timeouts and transport security (docs/security-infrastructure.md).

/** A file the process must be able to read (a CA, a certificate, a key); checked at start-up. */
const readableFile = z
  .string()
  .min(1)
  .refine((path) => {
    try {
      accessSync(path, constants.R_OK);
      return true;
    } catch {
      return false;
    }
  }, 'file does not exist or is not readable');

const infrastructureSecuritySchema = {
  /** The worker's own role (oms_worker) on each database: only what its activities, relay and consumer do. */
  WORKER_ORDER_DATABASE_URL: url.default('postgres://oms_worker:oms-dev-worker@127.0.0.1:5432/order_db'),
  WORKER_PRODUCT_DATABASE_URL: url.default('postgres://oms_worker:oms-dev-worker@127.0.0.1:5432/product_db'),
  WORKER_PAYMENT_DATABASE_URL: url.default('postgres://oms_worker:oms-dev-worker@127.0.0.1:5432/payment_db'),
  /** Superuser (or CREATEROLE + CREATEDB) connection for db/provision.ts only; no service uses it. Default: the local cluster's socket. */
  DATABASE_ADMIN_URL: url.default('postgres://postgres@localhost/postgres?host=/tmp&port=5432'),
  /** Longest wait for a pooled connection (a free one, or a new one to be opened) before the query fails. */
  DATABASE_ACQUIRE_TIMEOUT_MS: positiveInt.default(5_000),
  /** PostgreSQL statement_timeout of the services' and the worker's sessions (migrations run without one). */
  DATABASE_STATEMENT_TIMEOUT_MS: positiveInt.default(10_000),
  /** PostgreSQL lock_timeout: a statement waiting this long for a row or table lock fails instead of queueing. */
  DATABASE_LOCK_TIMEOUT_MS: positiveInt.default(5_000),
  /** A session idle inside an open transaction this long is ended by the server, releasing its locks. */
  DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: positiveInt.default(60_000),
  /** CA that signed the PostgreSQL server certificate: TLS with full verification for every database URL. */
  DATABASE_SSL_CA_FILE: readableFile.optional(),

  /** CA for a rediss:// REDIS_URL whose server certificate is not signed by a public CA. */
  REDIS_TLS_CA_FILE: readableFile.optional(),

  KAFKA_SSL: flag.default(false),
  KAFKA_SSL_CA_FILE: readableFile.optional(),
  /** Client certificate and key (both or neither) for brokers that require mutual TLS. */
  KAFKA_SSL_CERT_FILE: readableFile.optional(),
  KAFKA_SSL_KEY_FILE: readableFile.optional(),
  KAFKA_SASL_MECHANISM: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']).optional(),
  KAFKA_SASL_USERNAME: z.string().min(1).optional(),
  KAFKA_SASL_PASSWORD: z.string().min(1).optional(),

  TEMPORAL_TLS: flag.default(false),
  TEMPORAL_TLS_CA_FILE: readableFile.optional(),
  /** Client certificate and key (both or neither) for a frontend that requires mutual TLS. */
  TEMPORAL_TLS_CERT_FILE: readableFile.optional(),
  TEMPORAL_TLS_KEY_FILE: readableFile.optional(),
  /** Name checked against the server certificate when it differs from TEMPORAL_ADDRESS's host. */
  TEMPORAL_TLS_SERVER_NAME: z.string().min(1).optional(),
  /** API key (e.g. Temporal Cloud), sent as a bearer token; requires TEMPORAL_TLS. */
  TEMPORAL_API_KEY: z.string().min(1).optional(),
};

type InfrastructureSecurityConfig = z.infer<z.ZodObject<typeof infrastructureSecuritySchema>> &
  Pick<z.infer<typeof envSchema>, 'NODE_ENV' | 'HOST' | 'REDIS_URL' | 'ORDER_DATABASE_URL' | 'PRODUCT_DATABASE_URL' | 'PAYMENT_DATABASE_URL'>;

/** The database passwords of the local development stack; refused where anyone else can reach the process. */
export const DEVELOPMENT_DATABASE_PASSWORDS: ReadonlySet<string> = new Set(['oms-dev-order', 'oms-dev-product', 'oms-dev-payment', 'oms-dev-worker']);

/** Combinations of the variables above that cannot work or would send a secret in clear; each names its variables. */
function infrastructureSecurityProblems(config: InfrastructureSecurityConfig): string[] {
  const problems: string[] = [];
  const both = (a: keyof InfrastructureSecurityConfig, b: keyof InfrastructureSecurityConfig) => {
    if ((config[a] === undefined) !== (config[b] === undefined)) problems.push(`${a}, ${b}: set both or neither`);
  };
  both('KAFKA_SSL_CERT_FILE', 'KAFKA_SSL_KEY_FILE');
  both('TEMPORAL_TLS_CERT_FILE', 'TEMPORAL_TLS_KEY_FILE');
  for (const name of ['KAFKA_SSL_CA_FILE', 'KAFKA_SSL_CERT_FILE'] as const) {
    if (config[name] !== undefined && !config.KAFKA_SSL) problems.push(`${name}: requires KAFKA_SSL=true`);
  }
  for (const name of ['TEMPORAL_TLS_CA_FILE', 'TEMPORAL_TLS_CERT_FILE', 'TEMPORAL_TLS_SERVER_NAME', 'TEMPORAL_API_KEY'] as const) {
    if (config[name] !== undefined && !config.TEMPORAL_TLS) problems.push(`${name}: requires TEMPORAL_TLS=true`);
  }
  const sasl = config.KAFKA_SASL_USERNAME !== undefined || config.KAFKA_SASL_PASSWORD !== undefined;
  if (config.KAFKA_SASL_MECHANISM && (config.KAFKA_SASL_USERNAME === undefined || config.KAFKA_SASL_PASSWORD === undefined)) {
    problems.push('KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD: required with KAFKA_SASL_MECHANISM');
  } else if (sasl && !config.KAFKA_SASL_MECHANISM) {
    problems.push('KAFKA_SASL_MECHANISM: required with KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD');
  }
  if (config.KAFKA_SASL_MECHANISM === 'plain' && !config.KAFKA_SSL) problems.push('KAFKA_SASL_MECHANISM: plain sends the password in clear; requires KAFKA_SSL=true');
  if (config.REDIS_TLS_CA_FILE !== undefined && !config.REDIS_URL.startsWith('rediss://')) problems.push('REDIS_TLS_CA_FILE: requires a rediss:// REDIS_URL');
  if (config.NODE_ENV === 'production' || !isLoopbackHost(config.HOST)) {
    const where = config.NODE_ENV === 'production' ? 'in production' : `with HOST=${config.HOST} (not loopback)`;
    const urls = ['ORDER_DATABASE_URL', 'PRODUCT_DATABASE_URL', 'PAYMENT_DATABASE_URL', 'WORKER_ORDER_DATABASE_URL', 'WORKER_PRODUCT_DATABASE_URL', 'WORKER_PAYMENT_DATABASE_URL'] as const;
    for (const name of urls) {
      if (DEVELOPMENT_DATABASE_PASSWORDS.has(decodeURIComponent(new URL(config[name]).password))) {
        problems.push(`${name}: the development default password must not be used ${where}`);
      }
    }
  }
  return problems;
}
// ---------------------------------------------------------------------------------------------
/** Development defaults of the authentication settings; never accepted outside a loopback development setup. */
export const DEV_JWT_ISSUER = 'oms-dev';
export const DEV_JWT_AUDIENCE = 'oms-api';
export const DEV_WORKER_SERVICE_TOKEN = 'oms-dev-worker-credential-not-a-secret';
/** File name of the development public key that `./oms up` writes to $OMS_STATE_DIR/auth/. */
export const DEV_JWT_PUBLIC_KEY_FILENAME = 'oms-dev-jwt-public.pem';
/** JWS algorithms verified with a public key. HS* (shared secret) and "none" are never accepted. */
export const ASYMMETRIC_JWT_ALGORITHMS = ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'EdDSA'] as const;

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),

  /** Each service connects as its own database's owner role (see db/roles.ts); migrations run as it too. */
  ORDER_DATABASE_URL: url.default('postgres://oms_order:oms-dev-order@127.0.0.1:5432/order_db'),
  PRODUCT_DATABASE_URL: url.default('postgres://oms_product:oms-dev-product@127.0.0.1:5432/product_db'),
  PAYMENT_DATABASE_URL: url.default('postgres://oms_payment:oms-dev-payment@127.0.0.1:5432/payment_db'),
  DATABASE_POOL_MAX: positiveInt.default(10),

  REDIS_URL: url.default('redis://127.0.0.1:6379'),
  KAFKA_BROKERS: z
    .string()
    .default('127.0.0.1:9092')
    .transform((value) => value.split(',').map((broker) => broker.trim()).filter(Boolean))
    .pipe(z.array(z.string().regex(/^[^:]+:\d+$/, 'expected host:port')).min(1)),
  KAFKA_CLIENT_ID: z.string().min(1).default('oms'),
  /** Copies of each OMS topic's partitions when ensureTopics creates it: 1 on the one-broker dev stack, 3 in production. */
  KAFKA_TOPIC_REPLICATION_FACTOR: positiveInt.default(1),
  /** In-sync copies an acks=all write needs on the OMS topics: with 3 copies, 2 lets one broker be down without losing a write. */
  KAFKA_TOPIC_MIN_INSYNC_REPLICAS: positiveInt.default(1),

  TEMPORAL_ADDRESS: z.string().min(1).default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_UI_URL: url.default('http://127.0.0.1:8233'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('oms-orders'),
  WORKER_MAX_CONCURRENT_ACTIVITIES: positiveInt.default(50),
  WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: positiveInt.default(20),
  WORKER_SHUTDOWN_GRACE_MS: positiveInt.default(10_000),
  WORKER_METRICS_PORT: port.default(9464),
  /** The worker's own Prometheus registry (outbox relay, consumers); WORKER_METRICS_PORT is Temporal's. */
  WORKER_APP_METRICS_PORT: port.default(9465),
  /** Path of a prebuilt workflow bundle (see workers/workflow-bundle.ts); unset: bundle workflows/ at start-up. */
  OMS_WORKFLOW_BUNDLE: z.string().min(1).optional(),

  HOST: z.string().default('127.0.0.1'),
  ORDER_SERVICE_PORT: port.default(8084),
  PRODUCT_SERVICE_PORT: port.default(8083),
  PAYMENT_SERVICE_PORT: port.default(8085),
  ORDER_SERVICE_URL: url.default('http://127.0.0.1:8084'),
  PRODUCT_SERVICE_URL: url.default('http://127.0.0.1:8083'),
  PAYMENT_SERVICE_URL: url.default('http://127.0.0.1:8085'),

  // ---- authentication (services/shared/http/auth.ts; the model is described in README.md) ----
  /** `iss` every bearer JWT must carry: the identity provider's issuer identifier. */
  AUTH_JWT_ISSUER: z.string().min(1).default(DEV_JWT_ISSUER),
  /** `aud` every bearer JWT must name: this API's identifier at the identity provider. */
  AUTH_JWT_AUDIENCE: z.string().min(1).default(DEV_JWT_AUDIENCE),
  /** Comma-separated signature algorithms accepted (asymmetric only: the services hold public keys). */
  AUTH_JWT_ALGORITHMS: z
    .string()
    .default('ES256')
    .transform((value) => value.split(',').map((algorithm) => algorithm.trim()).filter(Boolean))
    .pipe(z.array(z.enum(ASYMMETRIC_JWT_ALGORITHMS)).min(1)),
  /** The identity provider's JWKS endpoint (keys fetched and cached by `kid`); or AUTH_JWT_PUBLIC_KEY_FILE. */
  AUTH_JWKS_URL: url.optional(),
  /** A PEM (SPKI) public key file the JWTs are verified with; `./oms up` points it at the development key. */
  AUTH_JWT_PUBLIC_KEY_FILE: z.string().min(1).optional(),
  /** The saga worker's credential for the TCC, restock and order-refund endpoints (its scopes: http/service-auth.ts). */
  WORKER_SERVICE_TOKEN: z.string().min(32, 'must be at least 32 characters').default(DEV_WORKER_SERVICE_TOKEN),
  /** Timeout for one service-to-service HTTP call (TCC try/confirm/cancel, price lookups). */
  HTTP_CLIENT_TIMEOUT_MS: positiveInt.default(5_000),

  /** TCC: a reservation neither confirmed nor cancelled expires after this long. */
  RESERVATION_TTL_SECONDS: positiveInt.default(900),
  RESERVATION_SWEEP_INTERVAL_MS: positiveInt.default(5_000),
  /**
   * How long a saga keeps retrying an undo (release stock, refund money) before it stops in
   * COMPENSATION_FAILED and waits for an operator (`./oms saga retry`). Hours: a participant down
   * for a while must not leave an order claiming FAILED with its money still taken.
   */
  SAGA_COMPENSATION_RETRY_HORIZON_SECONDS: positiveInt.default(6 * 60 * 60),
  /** Manual checkout: how long tccPayment holds reservations waiting for the customer's confirm. */
  CHECKOUT_HOLD_TTL_SECONDS: positiveInt.default(600),
  /**
   * Admission control of POST /orders: PENDING orders (saga not started or not finished) beyond
   * which new orders are refused with 503 ORDER_BACKLOG_FULL and Retry-After (services/order/admission.ts).
   */
  ORDER_ADMISSION_MAX_BACKLOG: positiveInt.default(10_000),
  /** Retry-After of that 503, in seconds. */
  ORDER_ADMISSION_RETRY_AFTER_SECONDS: positiveInt.default(5),
  /** How often the order service counts the backlog (the bound may be overshot by what arrives in between). */
  ORDER_ADMISSION_REFRESH_MS: positiveInt.default(500),
  /** Saga starter (workers/saga-starter.ts): createOrder starts in flight at once. */
  SAGA_STARTER_CONCURRENCY: positiveInt.default(32),
  /** Start intents claimed per round trip to order_db. */
  SAGA_STARTER_BATCH_SIZE: positiveInt.default(200),
  /** The starter looks for due intents at least this often (NOTIFY wakes it at once for new ones). */
  SAGA_STARTER_POLL_INTERVAL_MS: positiveInt.default(1_000),
  /** Backoff of a failed start (Temporal down or slow): base, doubled per attempt, capped. */
  SAGA_STARTER_RETRY_BASE_MS: positiveInt.default(500),
  SAGA_STARTER_RETRY_MAX_MS: positiveInt.default(30_000),

  IDEMPOTENCY_TTL_HOURS: positiveInt.default(24),
  /** A PROCESSING idempotency record older than this belongs to a request that died: it may be retried. */
  IDEMPOTENCY_LOCK_SECONDS: positiveInt.default(60),
  IDEMPOTENCY_CLEANUP_INTERVAL_MS: positiveInt.default(60_000),

  /** Rows per claim and per Kafka batch: one claim statement, one produce request per partition leader, one mark statement. */
  OUTBOX_BATCH_SIZE: positiveInt.default(500),
  OUTBOX_MAX_RETRIES: positiveInt.default(5),
  OUTBOX_POLL_INTERVAL_MS: positiveInt.default(1_000),
  OUTBOX_RETRY_BASE_MS: positiveInt.default(500),
  /** Ceiling of the outbox's exponential backoff (a row retried while Kafka is down waits at most this long). */
  OUTBOX_RETRY_MAX_MS: positiveInt.default(60_000),
  OUTBOX_RETENTION_HOURS: positiveInt.default(72),
  /** Worker: how often it checks that the outbox relay workflows and the timeline consumer still run (workers/supervision.ts). */
  SUPERVISION_INTERVAL_MS: positiveInt.default(15_000),
  /** Worker: the timeline consumer is restarted when it finished no batch and made no idle fetch for this long. */
  CONSUMER_STALL_RESTART_MS: positiveInt.default(300_000),

  // ---- Abuse limits and what the services expose (docs/security-abuse.md) ----
  /** Rate limits on every service, counted in Redis so they hold across instances. */
  RATE_LIMIT_ENABLED: flag.default(true),
  /** Requests per minute from one client address, on every route but health, metrics and service-credential routes. */
  RATE_LIMIT_PER_ADDRESS_PER_MINUTE: positiveInt.default(600),
  /** Requests per minute from one signed-in customer, whatever address they come from. */
  RATE_LIMIT_PER_CUSTOMER_PER_MINUTE: positiveInt.default(120),
  /** Addresses the per-address limit does not count: our own callers of public routes (the order service's price lookups). */
  RATE_LIMIT_EXEMPT_ADDRESSES: ipList.default([]),
  /** Whose X-Forwarded-For to believe for the client address (see trustProxy above). */
  TRUST_PROXY: trustProxy.default(false),
  /** The whole request, body included, must arrive within this; otherwise 408 and the connection closes. */
  HTTP_REQUEST_TIMEOUT_MS: positiveInt.default(30_000),
  /** The request line and headers must arrive within this (slow-header clients are cut off). */
  HTTP_HEADERS_TIMEOUT_MS: positiveInt.default(10_000),
  /** An idle keep-alive connection is closed after this; keep it above a load balancer's idle timeout. */
  HTTP_KEEP_ALIVE_TIMEOUT_MS: positiveInt.default(72_000),
  /** A socket with no activity at all for this long is destroyed. */
  HTTP_CONNECTION_TIMEOUT_MS: positiveInt.default(120_000),
  /** Manual checkouts (PENDING or AWAITING_CONFIRMATION) one customer may have open at once. */
  MAX_OPEN_CHECKOUTS_PER_CUSTOMER: positiveInt.default(3),
  /** Serve /docs and /openapi.json. */
  EXPOSE_DOCS: flag.default(true),
  /** Serve GET /metrics (services and the worker's app metrics). */
  METRICS_ENABLED: flag.default(true),
  /** When set, GET /metrics requires `Authorization: Bearer <this>`. */
  METRICS_BEARER_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  ...infrastructureSecuritySchema,
});

export type Config = Readonly<z.infer<typeof envSchema>>;

/** True for a HOST that only this machine can reach: 127.0.0.0/8, ::1 or localhost. */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1' || host === '[::1]';
}

/**
 * Variables still holding a development default that lets anyone in: the worker credential
 * everyone can read in this repository, and the development key pair whose private half lies
 * in the state directory.
 */
function developmentDefaultsInUse(config: z.infer<typeof envSchema>): string[] {
  const problems: string[] = [];
  if (config.WORKER_SERVICE_TOKEN === DEV_WORKER_SERVICE_TOKEN) problems.push('WORKER_SERVICE_TOKEN');
  if (config.AUTH_JWT_PUBLIC_KEY_FILE && basename(config.AUTH_JWT_PUBLIC_KEY_FILE) === DEV_JWT_PUBLIC_KEY_FILENAME) {
    problems.push('AUTH_JWT_PUBLIC_KEY_FILE');
  }
  return problems;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses and freezes configuration; throws ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  const config = parsed.data;
  const problems: string[] = [];
  // A forgotten rename must not leave the worker holding a credential nobody checks any more.
  if (env.SERVICE_TOKEN !== undefined) problems.push('SERVICE_TOKEN: replaced by per-caller credentials; set WORKER_SERVICE_TOKEN instead');
  if (config.AUTH_JWKS_URL && config.AUTH_JWT_PUBLIC_KEY_FILE) {
    problems.push('AUTH_JWKS_URL, AUTH_JWT_PUBLIC_KEY_FILE: set one of them, not both');
  }
  const exposed = config.NODE_ENV === 'production' ? 'NODE_ENV=production' : isLoopbackHost(config.HOST) ? undefined : `HOST=${config.HOST} is not a loopback address`;
  if (exposed) {
    for (const variable of developmentDefaultsInUse(config)) {
      problems.push(`${variable}: the development default must not be used when ${exposed}`);
    }
  }
  if (config.HTTP_HEADERS_TIMEOUT_MS > config.HTTP_REQUEST_TIMEOUT_MS) {
    problems.push('HTTP_HEADERS_TIMEOUT_MS: must not exceed HTTP_REQUEST_TIMEOUT_MS (the headers are part of the request)');
  }
  if (config.KAFKA_TOPIC_MIN_INSYNC_REPLICAS > config.KAFKA_TOPIC_REPLICATION_FACTOR) {
    problems.push('KAFKA_TOPIC_MIN_INSYNC_REPLICAS: cannot exceed KAFKA_TOPIC_REPLICATION_FACTOR (no write could ever succeed)');
  }
  problems.push(...infrastructureSecurityProblems(config));
  if (problems.length > 0) throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`);
  return Object.freeze(config);
}

export type JwtKeySource = { kind: 'jwks'; url: string } | { kind: 'public-key-file'; path: string };

/** Where the HTTP services get the keys that verify bearer JWTs; a service cannot start without one. */
export function jwtKeySource(config: Pick<Config, 'AUTH_JWKS_URL' | 'AUTH_JWT_PUBLIC_KEY_FILE'>): JwtKeySource {
  if (config.AUTH_JWKS_URL) return { kind: 'jwks', url: config.AUTH_JWKS_URL };
  if (config.AUTH_JWT_PUBLIC_KEY_FILE) return { kind: 'public-key-file', path: config.AUTH_JWT_PUBLIC_KEY_FILE };
  throw new ConfigError(
    'Invalid configuration:\n  AUTH_JWKS_URL, AUTH_JWT_PUBLIC_KEY_FILE: one is required to verify bearer tokens ' +
      '(./oms up sets AUTH_JWT_PUBLIC_KEY_FILE to the development key in $OMS_STATE_DIR/auth/)',
  );
}
