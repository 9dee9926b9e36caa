/**
 * Keyset pagination for the public lists (orders, products): a page is the rows after the last
 * one the client saw, by (created_at, id), so a page costs an index range scan however deep the
 * client goes, there is no count(*), and rows inserted between two requests neither repeat nor
 * push others off a page. The cursor is opaque to clients (base64url of the last row's key) and
 * checked when it comes back: a malformed one is 400 INVALID_CURSOR.
 *
 * The tables' key columns are `created_at` (timestamptz) and `id` (uuid). The cursor carries
 * created_at to the microsecond, as PostgreSQL stores it: a JS Date (milliseconds) would skip or
 * repeat rows created within the same millisecond.
 */
import { sql, type RawBuilder, type SqlBool } from 'kysely';
import { z } from 'zod';
import { ApiError } from './errors';

export const INVALID_CURSOR = 'INVALID_CURSOR';

export type KeysetOrder = 'newest-first' | 'oldest-first';

interface KeysetPosition {
  createdAt: string;
  id: string;
}

/** The query parameters every keyset list takes. */
export const keysetQuerySchema = {
  limit: z.coerce.number().int().min(1).max(200).default(50).describe('Rows per page'),
  cursor: z.string().min(1).max(200).optional().describe('nextCursor of the previous page; omit for the first page'),
};

/** What every keyset list answers besides its items. */
export const nextCursorSchema = z.string().nullable().describe('Pass as `cursor` for the next page; null on the last page');

const positionSchema = z.tuple([z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/), z.uuid()]);

function encodeCursor({ createdAt, id }: KeysetPosition): string {
  return Buffer.from(JSON.stringify([createdAt, id])).toString('base64url');
}

function decodeCursor(cursor: string): KeysetPosition {
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    decoded = undefined;
  }
  const parsed = positionSchema.safeParse(decoded);
  if (!parsed.success || Number.isNaN(Date.parse(parsed.data[0]))) {
    throw new ApiError(400, INVALID_CURSOR, 'cursor is not one this API gave out; start again without it');
  }
  return { createdAt: parsed.data[0], id: parsed.data[1] };
}

/** Select it with the rows: the row's created_at to the microsecond, in UTC, for its cursor. */
export const keysetCreatedAt = sql<string>`to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`.as('keyset_created_at');

/** The WHERE condition "after the cursor" in the list's order, or undefined for the first page (the cursor is validated here). */
export function afterCursor(cursor: string | undefined, order: KeysetOrder): RawBuilder<SqlBool> | undefined {
  if (cursor === undefined) return undefined;
  const { createdAt, id } = decodeCursor(cursor);
  const comparison = sql.raw(order === 'newest-first' ? '<' : '>');
  return sql<SqlBool>`(created_at, id) ${comparison} (${createdAt}::timestamptz, ${id}::uuid)`;
}

/** ORDER BY for the list's order; the index must be on (created_at, id) in the same directions. */
export const keysetDirection = (order: KeysetOrder) => (order === 'newest-first' ? 'desc' : 'asc');

/**
 * Cuts rows fetched with `limit + 1` to a page: the extra row only says that there is a next page,
 * whose cursor is the last row kept.
 */
export function toPage<Row extends { id: string; keyset_created_at: string }>(rows: Row[], limit: number): { rows: Row[]; nextCursor: string | null } {
  if (rows.length <= limit) return { rows, nextCursor: null };
  const kept = rows.slice(0, limit);
  const last = kept[kept.length - 1]!;
  return { rows: kept, nextCursor: encodeCursor({ createdAt: last.keyset_created_at, id: last.id }) };
}
