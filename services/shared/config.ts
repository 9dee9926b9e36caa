/**
 * Configuration for every OMS process, parsed once from the environment with zod and frozen.
 * A bad value stops the process with a message naming the variable. Defaults are the local
 * no-Docker stack started by `./oms up`.
 */
import { z } from 'zod';

const url = z.string().url();
const port = z.coerce.number().int().min(1).max(65_535);
const positiveInt = z.coerce.number().int().positive();
/** "true" or "false" (z.coerce.boolean would read "false" as true). */
const flag = z.enum(['true', 'false']).transform((value) => value === 'true');
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

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),

  ORDER_DATABASE_URL: url.default('postgres://postgres@127.0.0.1:5432/order_db'),
  PRODUCT_DATABASE_URL: url.default('postgres://postgres@127.0.0.1:5432/product_db'),
  PAYMENT_DATABASE_URL: url.default('postgres://postgres@127.0.0.1:5432/payment_db'),
  DATABASE_POOL_MAX: positiveInt.default(10),

  REDIS_URL: url.default('redis://127.0.0.1:6379'),
  KAFKA_BROKERS: z
    .string()
    .default('127.0.0.1:9092')
    .transform((value) => value.split(',').map((broker) => broker.trim()).filter(Boolean))
    .pipe(z.array(z.string().regex(/^[^:]+:\d+$/, 'expected host:port')).min(1)),
  KAFKA_CLIENT_ID: z.string().min(1).default('oms'),

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

  /** Bearer token that services present to each other's TCC, restock, refund and admin endpoints. */
  SERVICE_TOKEN: z.string().min(16, 'must be at least 16 characters').default('oms-dev-service-token'),
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
  /** Order service: how often the reconciler looks for PENDING orders whose createOrder saga never started. */
  ORDER_RECONCILE_INTERVAL_MS: positiveInt.default(10_000),
  /** A PENDING order younger than this may still be between its commit and its saga start: left alone. */
  ORDER_RECONCILE_MIN_AGE_SECONDS: positiveInt.default(5),

  IDEMPOTENCY_TTL_HOURS: positiveInt.default(24),
  /** A PROCESSING idempotency record older than this belongs to a request that died: it may be retried. */
  IDEMPOTENCY_LOCK_SECONDS: positiveInt.default(60),
  IDEMPOTENCY_CLEANUP_INTERVAL_MS: positiveInt.default(60_000),

  OUTBOX_BATCH_SIZE: positiveInt.default(100),
  OUTBOX_MAX_RETRIES: positiveInt.default(5),
  OUTBOX_POLL_INTERVAL_MS: positiveInt.default(1_000),
  OUTBOX_RETRY_BASE_MS: positiveInt.default(500),
  /** Ceiling of the outbox's exponential backoff (a row retried while Kafka is down waits at most this long). */
  OUTBOX_RETRY_MAX_MS: positiveInt.default(60_000),
  OUTBOX_RETENTION_HOURS: positiveInt.default(72),

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
});

export type Config = Readonly<z.infer<typeof envSchema>>;

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
  if (parsed.data.NODE_ENV === 'production' && parsed.data.SERVICE_TOKEN === 'oms-dev-service-token') {
    throw new ConfigError('Invalid configuration:\n  SERVICE_TOKEN: the development default must not be used in production');
  }
  if (parsed.data.HTTP_HEADERS_TIMEOUT_MS > parsed.data.HTTP_REQUEST_TIMEOUT_MS) {
    throw new ConfigError('Invalid configuration:\n  HTTP_HEADERS_TIMEOUT_MS: must not exceed HTTP_REQUEST_TIMEOUT_MS (the headers are part of the request)');
  }
  return Object.freeze(parsed.data);
}
