/**
 * The correlation id: one id that follows everything a request causes, across processes.
 *
 * It starts as the id of an HTTP request (the client's X-Request-Id when it sent a usable one, else
 * one the service makes up) and travels on:
 * - into every outbox event the request writes (the event's correlationId, and the Kafka message's
 *   correlation-id header);
 * - into the saga the request starts: the saga start intent keeps it until the starter starts the
 *   workflow with it in its memo (`correlationId`); the workflow interceptor passes it to each child
 *   workflow's memo and to every activity as a Temporal header;
 * - from an activity into its calls to the participants (X-Request-Id), whose events carry it too.
 *
 * So the id a client sent with POST /orders finds the order's events on Kafka, its saga in Temporal
 * (memo) and every log line of every process that worked on it (docs/runbook.md shows how).
 *
 * Inside a process the current id is kept in AsyncLocalStorage, set where work enters (an HTTP
 * request, an activity, a saga start) and read where it leaves (the outbox writer, the Temporal
 * start, the HTTP client). Work that no request started (the reservation sweepers) has none.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

/** The HTTP header that carries it, in both directions. */
export const REQUEST_ID_HEADER = 'x-request-id';

/**
 * What a client's X-Request-Id must look like to be kept: UUIDs, ULIDs, trace ids and the ids
 * proxies make all fit. Anything else (too long, spaces, control characters) is replaced by an id of
 * ours rather than refused, so a proxy's odd header never fails a request; the answer's
 * X-Request-Id says which id was used.
 */
const USABLE_REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{7,99}$/;

export function usableRequestId(value: unknown): string | undefined {
  return typeof value === 'string' && USABLE_REQUEST_ID.test(value) ? value : undefined;
}

const current = new AsyncLocalStorage<string>();

/** Runs `work` with `correlationId` as the current id (nothing changes when it is undefined or null). */
export function withCorrelationId<T>(correlationId: string | null | undefined, work: () => T): T {
  return correlationId ? current.run(correlationId, work) : work();
}

/** The current correlation id, if the running work has one. */
export function currentCorrelationId(): string | undefined {
  return current.getStore();
}
