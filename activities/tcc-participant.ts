/**
 * One client for both TCC participants (stock in the product service, money in the payment
 * service): a call either answers 2xx, parsed with a schema the calling activity owns, or fails in
 * the one way Temporal should see it. A participant's decline (its 4xx code is in `declines`) is a
 * non-retryable business failure of that type; any other 4xx, or a 2xx whose body is not what we
 * read, is non-retryable too (retrying the same request cannot help); 5xx, timeouts and refused
 * connections stay ordinary errors (./http.ts), so Temporal retries them.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { z } from 'zod';
import { FAILURE_TYPES } from '../workflows/order-contract';
import { errorCode, errorMessage, unexpectedResponse, type JsonHttpClient, type JsonResponse } from './http';

type FailureType = (typeof FAILURE_TYPES)[keyof typeof FAILURE_TYPES];

/** A participant's error code, and the failure type a saga sees for it. */
export type Declines = Readonly<Record<string, { type: FailureType; keepBody?: boolean }>>;

/** Declines both participants answer with the same code. */
export const COMMON_DECLINES: Declines = {
  TRY_AFTER_CANCEL: { type: FAILURE_TYPES.tryAfterCancel },
  RESERVATION_EXPIRED: { type: FAILURE_TYPES.reservationExpired },
  RESERVATION_CANCELLED: { type: FAILURE_TYPES.reservationCancelled },
};

export interface TccCall<T> {
  /** What the call does, for failure messages: "reserve stock for order X". */
  what: string;
  path: string;
  body?: unknown;
  /** The caller's reading of a 2xx answer. */
  answer: z.ZodType<T>;
  /** Ids kept in a decline's details (orderId, reservationId). */
  subject: Record<string, string>;
}

/** An undo's first call: its answer, or that the participant had already confirmed (undo by compensating instead). */
export type CancelOutcome<T> = { confirmed: false; answer: T } | { confirmed: true };

export interface TccParticipantClient {
  call<T>(call: TccCall<T>): Promise<T>;
  /** A cancel that the participant refuses with RESERVATION_ALREADY_CONFIRMED: the branch was confirmed, so undo it otherwise. */
  cancel<T>(call: TccCall<T>): Promise<CancelOutcome<T>>;
}

function parsed<T>(call: TccCall<T>, response: JsonResponse): T {
  const answer = call.answer.safeParse(response.body);
  if (answer.success) return answer.data;
  throw ApplicationFailure.nonRetryable(
    `${call.what}: participant answered ${response.status} with a body we cannot read: ${answer.error.message.slice(0, 300)}`,
    FAILURE_TYPES.participantRejected,
    { status: response.status },
  );
}

function declined(declines: Declines, call: TccCall<unknown>, response: JsonResponse): ApplicationFailure | null {
  const code = errorCode(response);
  const decline = code === null ? undefined : declines[code];
  if (!decline) return null;
  // keepBody: the amounts (required, available) stay in the saga's history for operators.
  return ApplicationFailure.nonRetryable(errorMessage(response), decline.type, decline.keepBody ? { ...call.subject, body: response.body } : call.subject);
}

const isSuccess = (response: JsonResponse) => response.status >= 200 && response.status < 300;

export function createTccParticipantClient(http: JsonHttpClient, declines: Declines): TccParticipantClient {
  return {
    async call(call) {
      const response = await http.post(call.path, call.body);
      if (isSuccess(response)) return parsed(call, response);
      throw declined(declines, call, response) ?? unexpectedResponse(call.what, response);
    },
    async cancel(call) {
      const response = await http.post(call.path, call.body);
      if (isSuccess(response)) return { confirmed: false, answer: parsed(call, response) };
      if (errorCode(response) === 'RESERVATION_ALREADY_CONFIRMED') return { confirmed: true };
      throw unexpectedResponse(call.what, response);
    },
  };
}
