/** Error responses declared on routes, so OpenAPI shows every status a caller can get. */
import { errorBodySchema } from '../../shared/http/error-body';

type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 500;

export function errorResponses(...statuses: ErrorStatus[]): Record<ErrorStatus, typeof errorBodySchema> {
  return Object.fromEntries([...statuses, 500].map((status) => [status, errorBodySchema])) as Record<ErrorStatus, typeof errorBodySchema>;
}
