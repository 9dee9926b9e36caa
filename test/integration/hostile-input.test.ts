/**
 * Hostile input, property-based: every route of the three services is sent generated bodies, path
 * parameters, query strings and headers (near-valid requests with one field broken, arbitrary JSON,
 * malformed text, odd content types, ids in other spellings, unstorable characters, huge numbers).
 * Two properties hold for every request, against real PostgreSQL, Redis and Temporal:
 *   - the answer is never a 5xx: bad input is the client's mistake and is answered as such;
 *   - a 4xx changes nothing: every business table and the outbox of all three databases are
 *     byte-for-byte what they were (compared by a digest of their rows).
 * Sagas start on a task queue no worker polls, so an accepted order stays as it was accepted.
 * OMS_HOSTILE_RUNS raises the number of requests per route (default 40; the seed of a failure is
 * printed by fast-check and replays it with OMS_HOSTILE_SEED).
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestOrderService, type TestOrderService } from '../helpers/order-service';
import { startTestPaymentService, type TestPaymentService } from '../helpers/payment-service';
import { createTestProduct, startTestProductService, type TestProductService } from '../helpers/product-service';
import { connectTestTemporal, type TestTemporal } from '../helpers/temporal';

const RUNS = Number(process.env.OMS_HOSTILE_RUNS ?? 40);
const SEED = process.env.OMS_HOSTILE_SEED === undefined ? undefined : Number(process.env.OMS_HOSTILE_SEED);

/** Tables whose content a refused request must leave alone. idempotency_records is left out: storing a 4xx answer for replay is its job. */
const UNTOUCHED_EXCEPT = new Set(['idempotency_records', 'kysely_migration', 'kysely_migration_lock']);

// ---- generators ----

const LONE_SURROGATES = ['\ud800', 'a\udc00b', '\ud83d'];
const nastyText = fc.constantFrom(
  '',
  ' ',
  '0',
  '-1',
  'null',
  'true',
  '1e309',
  '9'.repeat(40),
  '../../etc/passwd',
  '%',
  '%00',
  "'; DROP TABLE orders; --",
  '\u0000',
  'Ünïcödé 😀',
  'x'.repeat(5_000),
  ...LONE_SURROGATES,
);
const text = fc.oneof(fc.string({ maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 30 }), nastyText);
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  text,
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -1, 1.5, 2 ** 31, 2 ** 53, Number.MAX_SAFE_INTEGER + 2, 1e21),
  fc.boolean(),
  fc.constant(null),
  fc.jsonValue({ maxDepth: 2 }),
);

/** A valid-looking value most of the time, sometimes a hostile one, sometimes missing. */
function maybeBroken<T>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  return fc.oneof({ weight: 4, arbitrary: valid }, { weight: 2, arbitrary: hostileValue }, { weight: 1, arbitrary: fc.constant(undefined) });
}

/** An object shaped like a route's body with each field possibly broken, plus perhaps a field it does not know. */
function nearValid(fields: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<unknown> {
  const record = fc.record(Object.fromEntries(Object.entries(fields).map(([key, valid]) => [key, maybeBroken(valid)])));
  return fc.tuple(record, fc.dictionary(text, hostileValue, { maxKeys: 2 })).map(([body, extra]) => ({ ...extra, ...body }));
}

/** What goes on the wire: JSON of a near-valid body, JSON of anything, or raw text that may not be JSON at all. */
function wireBody(shape: fc.Arbitrary<unknown> | undefined): fc.Arbitrary<string | undefined> {
  const json = (arbitrary: fc.Arbitrary<unknown>) => arbitrary.map((value) => JSON.stringify(value));
  return fc.oneof(
    { weight: shape ? 5 : 0, arbitrary: json(shape ?? fc.constant({})) },
    { weight: 2, arbitrary: json(fc.jsonValue({ maxDepth: 3 })) },
    { weight: 1, arbitrary: text },
    { weight: 1, arbitrary: fc.constantFrom(undefined, '{', '{"a":', '[]', '{"reason":"\\ud800"}', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{}}}') },
  );
}

const headerText = fc.string({ unit: 'binary-ascii', maxLength: 40 }).filter((value) => !/[\r\n\0]/.test(value));
const contentType = fc.constantFrom('application/json', 'application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1');
const idempotencyKey = fc.option(fc.oneof(headerText, fc.constant('k'.repeat(300)), fc.uuid().map((uuid) => `key-${uuid}`)), { nil: undefined });

/**
 * A path segment as it goes on the wire. A lone surrogate has no UTF-8 form (encodeURIComponent
 * throws), so a client can only send bytes that are not UTF-8 at all: those come from RAW_SEGMENTS.
 */
function pathSegment(value: string): string {
  try {
    return encodeURIComponent(value);
  } catch {
    return `${encodeURIComponent(value.replace(/\p{Surrogate}/gu, ''))}%ED%A0%80`;
  }
}
const RAW_SEGMENTS = fc.constantFrom('%FF', '%ED%A0%80', '%C0%AF', '%E0%80', '%', '%zz', '..', '%2E%2E', '%2F', '%00');

function query(knownKeys: readonly string[], knownValues: fc.Arbitrary<string>): fc.Arbitrary<string> {
  const key = fc.oneof(fc.constantFrom(...knownKeys, 'limit', 'offset', 'cursor'), text);
  const value = fc.oneof(knownValues, text, fc.constantFrom('0', '-5', '201', '1000001', '1.5', 'abc'));
  return fc.array(fc.tuple(key, value), { maxLength: 4 }).map((pairs) => (pairs.length ? `?${new URLSearchParams(pairs).toString()}` : ''));
}

// ---- the routes ----

type Service = 'order' | 'product' | 'payment';
interface Ids {
  customerId: string;
  productId: string;
  orderId: string;
}

interface RouteCase {
  service: Service;
  method: 'GET' | 'POST' | 'PATCH' | 'PUT';
  /** The path with `:param`s, as the route declares it. */
  path: string;
  /** Valid-looking values of each path parameter (the generator also sends hostile ones). */
  params?: (ids: Ids) => fc.Arbitrary<string>;
  body?: (ids: Ids) => fc.Arbitrary<unknown>;
  query?: (ids: Ids) => fc.Arbitrary<string>;
  /** Internal routes are called with the service credential; public ones as the customer. */
  internal?: boolean;
  /**
   * A TCC try that is declined (409) records its decision as a domain event, on purpose: the saga
   * and auditors see why. That event is the one change such an answer may make.
   */
  decision?: { code: string; eventType: string };
}

const money = fc.oneof(fc.constantFrom('0.00', '10.00', '12.5', '99999999999999.99'), fc.double().map(String));
const idOf = (id: string) => fc.constantFrom(id, id.toUpperCase());
const anyId = (ids: Ids) => fc.oneof(idOf(ids.orderId), idOf(ids.customerId), idOf(ids.productId), fc.uuid());

const ROUTES: RouteCase[] = [
  {
    service: 'order',
    method: 'POST',
    path: '/orders',
    body: (ids) =>
      nearValid({
        customerId: idOf(ids.customerId),
        items: fc.array(nearValid({ productId: fc.oneof(idOf(ids.productId), fc.uuid()), quantity: fc.integer({ min: -2, max: 20_000 }) }), { maxLength: 3 }),
        paymentMethod: fc.constantFrom('ACCOUNT_BALANCE', 'CARD'),
        confirmation: fc.constantFrom('auto', 'manual'),
      }),
  },
  { service: 'order', method: 'GET', path: '/orders', query: (ids) => query(['customerId', 'status'], fc.oneof(idOf(ids.customerId), fc.constantFrom('PAID', 'PENDING'))) },
  { service: 'order', method: 'GET', path: '/orders/:id', params: anyId },
  { service: 'order', method: 'POST', path: '/orders/:id/confirm', params: anyId, body: () => fc.constant({}) },
  { service: 'order', method: 'POST', path: '/orders/:id/cancel', params: anyId, body: () => nearValid({ reason: fc.string({ maxLength: 40 }) }) },
  { service: 'order', method: 'GET', path: '/orders/:id/saga', params: anyId },
  { service: 'order', method: 'GET', path: '/orders/:id/events', params: anyId },
  { service: 'order', method: 'GET', path: '/customers/:id', params: anyId },
  {
    service: 'order',
    method: 'POST',
    path: '/customers',
    internal: true,
    body: () => nearValid({ name: fc.string({ maxLength: 20 }), email: fc.emailAddress(), status: fc.constantFrom('ACTIVE', 'INACTIVE') }),
  },
  { service: 'order', method: 'PATCH', path: '/customers/:id/status', internal: true, params: anyId, body: () => nearValid({ status: fc.constantFrom('ACTIVE', 'INACTIVE') }) },
  { service: 'product', method: 'GET', path: '/products', query: () => query([], fc.constant('10')) },
  { service: 'product', method: 'GET', path: '/products/:id', params: anyId },
  {
    service: 'product',
    method: 'PUT',
    path: '/products/:id/price',
    internal: true,
    params: anyId,
    body: () => nearValid({ price: money, currency: fc.constantFrom('USD', 'EUR', 'XXX') }),
  },
  {
    service: 'product',
    method: 'POST',
    path: '/products',
    internal: true,
    body: () => nearValid({ sku: fc.stringMatching(/^[A-Z0-9-]{1,12}$/), name: fc.string({ maxLength: 20 }), price: money, currency: fc.constantFrom('USD', 'EUR', 'XXX'), stockQuantity: fc.integer({ min: -1, max: 2_000_000_000 }) }),
  },
  {
    service: 'product',
    method: 'POST',
    path: '/stock/try',
    internal: true,
    decision: { code: 'INSUFFICIENT_STOCK', eventType: 'STOCK_RESERVATION_FAILED' },
    body: (ids) => nearValid({ orderId: fc.oneof(idOf(ids.orderId), fc.uuid()), items: fc.array(nearValid({ productId: idOf(ids.productId), quantity: fc.integer({ min: -1, max: 2_000_000 }) }), { maxLength: 2 }) }),
  },
  { service: 'product', method: 'POST', path: '/stock/confirm/:orderId', internal: true, params: anyId },
  { service: 'product', method: 'POST', path: '/stock/cancel/:orderId', internal: true, params: anyId },
  { service: 'product', method: 'POST', path: '/stock/restock/:orderId', internal: true, params: anyId },
  { service: 'payment', method: 'POST', path: '/accounts', internal: true, body: (ids) => nearValid({ customerId: fc.oneof(idOf(ids.customerId), fc.uuid()), balance: money, currency: fc.constantFrom('USD', 'JPY') }) },
  { service: 'payment', method: 'GET', path: '/accounts/:customerId', internal: true, params: anyId },
  {
    service: 'payment',
    method: 'POST',
    path: '/payments/try',
    internal: true,
    decision: { code: 'INSUFFICIENT_FUNDS', eventType: 'PAYMENT_FAILED' },
    body: (ids) => nearValid({ orderId: fc.oneof(idOf(ids.orderId), fc.uuid()), customerId: idOf(ids.customerId), amount: money, currency: fc.constantFrom('USD', 'EUR') }),
  },
  { service: 'payment', method: 'POST', path: '/payments/confirm/:reservationId', internal: true, params: anyId, body: () => nearValid({ paymentMethod: fc.constantFrom('ACCOUNT_BALANCE', 'CARD') }) },
  { service: 'payment', method: 'POST', path: '/payments/cancel/:reservationId', internal: true, params: anyId },
  { service: 'payment', method: 'POST', path: '/payments/cancel-by-order/:orderId', internal: true, params: anyId },
  { service: 'payment', method: 'GET', path: '/payments/:paymentId', internal: true, params: anyId },
  { service: 'payment', method: 'POST', path: '/payments/:paymentId/refunds', internal: true, params: anyId, body: () => nearValid({ amount: money, reason: fc.string({ maxLength: 20 }) }) },
  { service: 'payment', method: 'POST', path: '/payments/refund-by-order/:orderId', internal: true, params: anyId, body: () => nearValid({ reason: fc.string({ maxLength: 20 }) }) },
];

// ---- the test ----

/**
 * A digest of every row of every table that a refused request must not touch; outbox rows of
 * `allowedEventType` (a recorded decision) are left out of the outbox's digest.
 */
async function snapshot(db: Kysely<unknown>, allowedEventType?: string): Promise<Record<string, string>> {
  const tables = await sql<{ name: string }>`SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1`.execute(db);
  const digests: Record<string, string> = {};
  for (const { name } of tables.rows) {
    if (UNTOUCHED_EXCEPT.has(name)) continue;
    const rows =
      name === 'outbox_events' && allowedEventType
        ? sql`SELECT * FROM outbox_events WHERE event_type <> ${allowedEventType}`
        : sql`SELECT * FROM ${sql.table(name)}`;
    const row = await sql<{ digest: string | null }>`SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) AS digest FROM (${rows}) t`.execute(db);
    digests[name] = row.rows[0]?.digest ?? 'empty';
  }
  return digests;
}

describe('hostile input on every route', () => {
  let temporal: TestTemporal;
  let product: TestProductService;
  let payment: TestPaymentService;
  let order: TestOrderService;
  let ids: Ids;

  beforeAll(async () => {
    temporal = await connectTestTemporal('hostile-input');
    // Hundreds of requests a minute from one address: the rate limit (tested on its own) would
    // answer most of them 429 and hide how the routes treat their input.
    const unlimited = { RATE_LIMIT_ENABLED: 'false' };
    [product, payment] = await Promise.all([startTestProductService(unlimited), startTestPaymentService(unlimited)]);
    // No worker polls this task queue: accepted orders keep the state they were accepted in.
    // Nor does a saga starter run: it would delete the intents of accepted orders while a refused request is being checked.
    order = await startTestOrderService({ productUrl: product.url, temporal, taskQueue: temporal.taskQueue, sagaStarter: false, config: { ...unlimited, HTTP_CLIENT_TIMEOUT_MS: '1500' } });

    const customer = await order.app.inject({ method: 'POST', url: '/customers', headers: order.operator, payload: { name: 'Mallory', email: `mallory-${randomUUID()}@example.com` } });
    const customerId = customer.json<{ id: string }>().id;
    const account = await payment.app.inject({ method: 'POST', url: '/accounts', headers: payment.operator, payload: { customerId, balance: '100.00', currency: 'USD' } });
    expect(account.statusCode).toBe(201);
    const productId = await createTestProduct(product, { stockQuantity: 50, price: '10.00' });
    const placed = await order.app.inject({ method: 'POST', url: '/orders', headers: order.operator, payload: { customerId, items: [{ productId, quantity: 1 }] } });
    expect(placed.statusCode).toBe(202);
    ids = { customerId, productId, orderId: placed.json<{ id: string }>().id };
  });

  afterAll(async () => {
    // Terminate any saga started on this queue (no starter runs, so none should be); nobody would run them.
    if (temporal) {
      for await (const workflow of temporal.client.workflow.list({ query: `TaskQueue = '${temporal.taskQueue}' AND ExecutionStatus = 'Running'` })) {
        await temporal.client.workflow.getHandle(workflow.workflowId, workflow.runId).terminate('hostile-input test over').catch(() => undefined);
      }
    }
    await order?.close();
    await Promise.all([product?.close(), payment?.close()]);
    await temporal?.close();
  });

  const serviceOf = (service: Service) => ({ order, product, payment })[service];
  const dbOf = (service: Service) => serviceOf(service).db as Kysely<unknown>;

  for (const route of ROUTES) {
    it(`${route.method} ${route.path}: never a 5xx, and a 4xx changes nothing`, async () => {
      const paramNames = [...route.path.matchAll(/:(\w+)/g)].map((match) => match[1]!);
      const request = fc.record({
        params: fc.tuple(
          ...paramNames.map(() =>
            fc.oneof(
              { weight: 3, arbitrary: (route.params ? route.params(ids) : text).map(pathSegment) },
              { weight: 1, arbitrary: text.map(pathSegment) },
              { weight: 1, arbitrary: RAW_SEGMENTS },
            ),
          ),
        ),
        query: route.query ? route.query(ids) : fc.oneof({ weight: 3, arbitrary: fc.constant('') }, { weight: 1, arbitrary: query([], text) }),
        body: route.method === 'GET' ? fc.constant(undefined) : wireBody(route.body?.(ids)),
        contentType,
        idempotencyKey,
        authorization: fc.oneof({ weight: 6, arbitrary: fc.constant('valid') }, { weight: 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: headerText.map((value) => `Bearer ${value}`) }),
      });

      await fc.assert(
        fc.asyncProperty(request, async ({ params, query: queryString, body, contentType: type, idempotencyKey: key, authorization }) => {
          let url = route.path;
          paramNames.forEach((name, index) => {
            url = url.replace(`:${name}`, params[index]!);
          });
          const target = serviceOf(route.service);
          const headers: Record<string, string> = {};
          if (body !== undefined) headers['content-type'] = type;
          if (key !== undefined) headers['idempotency-key'] = key;
          if (authorization === 'valid') {
            // The route's real caller: an operator on the order API, the worker or an operator on the participants.
            Object.assign(headers, route.service === 'order' ? order.operator : route.service === 'product' ? product.authFor(url) : payment.authFor(url));
          } else if (authorization !== undefined) {
            headers.authorization = authorization;
          }

          const db = dbOf(route.service);
          const before = await snapshot(db);
          const beforeAsideDecisions = route.decision ? await snapshot(db, route.decision.eventType) : before;
          const response = await target.app.inject({ method: route.method, url: url + queryString, headers, ...(body === undefined ? {} : { payload: body }) });
          const context = `${route.method} ${url}${queryString.slice(0, 200)} body=${(body ?? '').slice(0, 300)} -> ${response.statusCode} ${response.body.slice(0, 300)}`;
          expect(response.statusCode, context).toBeLessThan(500);
          expect(response.headers['content-type'], context).toMatch(/^application\/json/);
          if (response.statusCode >= 400) {
            const { code } = response.json<{ error: { code: string } }>().error;
            expect(code, context).toMatch(/^[A-Z_]+$/);
            // Only a declined try may write, and only its decision's event.
            const declined = route.decision !== undefined && code === route.decision.code;
            const after = await snapshot(db, declined ? route.decision?.eventType : undefined);
            expect(after, `a refused request changed data: ${context}`).toEqual(declined ? beforeAsideDecisions : before);
          }
        }),
        { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) },
      );
    });
  }
});
