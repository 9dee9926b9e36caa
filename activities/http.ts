/**
 * A small JSON HTTP client for activities calling the TCC participants. It decides one thing for
 * every caller: what is transient. Timeouts, refused connections and 5xx throw ordinary errors, so
 * Temporal retries the activity with backoff; any other response is returned for the caller to map
 * (2xx to a result, the participant's 4xx codes to non-retryable business failures).
 */
import { ApplicationFailure } from '@temporalio/common';
import { Pool } from 'undici';
import { currentCorrelationId, REQUEST_ID_HEADER } from '../lib/correlation';
import { FAILURE_TYPES } from '../workflows/order-contract';

export interface JsonHttpClientOptions {
  baseUrl: string;
  /** The caller's own service credential, sent as `Authorization: Bearer <credential>` (see services/shared/http/service-auth.ts). */
  credential: string;
  timeoutMs: number;
}

export interface JsonResponse {
  status: number;
  body: unknown;
}

export interface JsonHttpClient {
  post(path: string, body?: unknown): Promise<JsonResponse>;
  get(path: string): Promise<JsonResponse>;
}

/** A participant answered 5xx: worth retrying (its body may be anything, we keep a short excerpt). */
export class ParticipantUnavailableError extends Error {
  override name = 'ParticipantUnavailableError';
}

function withCurrentRequestId(): Record<string, string> {
  const correlationId = currentCorrelationId();
  return correlationId ? { [REQUEST_ID_HEADER]: correlationId } : {};
}

/**
 * Requests go through undici's own request API on a keep-alive pool per participant, not through
 * the global fetch: fetch builds WHATWG Request, Headers and stream objects for every call and cost
 * the worker 0.6-0.7 ms of CPU per request against 0.12 ms here, on the saga's hottest path
 * (docs/benchmarks.md, "The participants' client"). The pool honours the server's keep-alive hint,
 * so an idle connection the participant is about to close is not reused.
 */
export function createJsonHttpClient({ baseUrl, credential, timeoutMs }: JsonHttpClientOptions): JsonHttpClient {
  // One pool per origin; each request's path is resolved against baseUrl as fetch resolved it.
  const pool = new Pool(new URL(baseUrl).origin);
  async function send(method: 'GET' | 'POST', path: string, body?: unknown): Promise<JsonResponse> {
    const url = new URL(path, baseUrl);
    const requestPath = `${url.pathname}${url.search}`;
    const response = await pool.request({
      method,
      path: requestPath,
      headers: {
        authorization: `Bearer ${credential}`,
        accept: 'application/json',
        // The saga's correlation id: the participant's log lines and events carry it too.
        ...withCurrentRequestId(),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      // A hung participant must not hold the activity until its start-to-close timeout.
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.body.text();
    // 408/429: the participant asks us to come back later; 5xx: it failed. Both are transient.
    if (response.statusCode >= 500 || response.statusCode === 408 || response.statusCode === 429) {
      throw new ParticipantUnavailableError(`${method} ${requestPath} answered ${response.statusCode}: ${text.slice(0, 200)}`);
    }
    let parsed: unknown = null;
    if (text.length > 0) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    return { status: response.statusCode, body: parsed };
  }
  return {
    post: (path, body) => send('POST', path, body ?? {}),
    get: (path) => send('GET', path),
  };
}

/** The stable error code of an OMS error body ({error:{code,message}}), or null. */
export function errorCode(response: JsonResponse): string | null {
  const body = response.body as { error?: { code?: unknown } } | null;
  return typeof body?.error?.code === 'string' ? body.error.code : null;
}

export function errorMessage(response: JsonResponse): string {
  const body = response.body as { error?: { message?: unknown } } | null;
  return typeof body?.error?.message === 'string' ? body.error.message : JSON.stringify(response.body)?.slice(0, 200) ?? '';
}

/**
 * A 4xx the caller has no mapping for (400 validation, 401 credential, 403 scope, 404 route): a defect or a
 * misconfiguration. Retrying the same request cannot help, so fail the step and let the saga compensate.
 */
export function unexpectedResponse(what: string, response: JsonResponse): ApplicationFailure {
  return ApplicationFailure.nonRetryable(
    `${what}: participant answered ${response.status} ${errorCode(response) ?? ''} ${errorMessage(response)}`.trim(),
    FAILURE_TYPES.participantRejected,
    { status: response.status, code: errorCode(response) },
  );
}
