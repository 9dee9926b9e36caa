/**
 * Errors that are answers to the client. Domain code throws these; the one HTTP error handler
 * (http/error-handler.ts) turns them into `{ error: { code, message, details? } }` with their status.
 * The codes are part of the API: clients branch on them, so they never change meaning.
 */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
    /** What went wrong inside (a 5xx's cause): logged by the error handler, never sent. */
    options?: { cause: unknown },
  ) {
    super(message, options);
  }
}

export class NotFoundError extends ApiError {
  constructor(resource: string, id: string) {
    super(404, `${resource.toUpperCase()}_NOT_FOUND`, `${resource} ${id} does not exist`, { id });
  }
}

export class ConflictError extends ApiError {
  constructor(code: string, message: string, details?: Record<string, unknown>) {
    super(409, code, message, details);
  }
}

export class UnauthorizedError extends ApiError {
  constructor(message = 'a valid service token is required (Authorization: Bearer <token>)') {
    super(401, 'UNAUTHORIZED', message);
  }
}
