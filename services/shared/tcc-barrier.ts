/**
 * The TCC barrier (after dtm's branch barrier), one home for both participants: one row per (order,
 * branch, operation) in tcc_barriers, written in the same transaction as the business change. The
 * transaction id is the order id; the branch is the participant ('stock', 'payment').
 *
 * Inserting a row that a concurrent transaction is inserting waits for that transaction to end, so
 * the answer (written now, or already there) is final: that is what serialises a try against a
 * cancel for the same order. A cancel that finds no TRY row writes it itself (reason CANCEL), so a
 * try arriving after its cancel is refused instead of holding what nobody will release.
 */
import { sql, type QueryExecutorProvider, type RawBuilder } from 'kysely';
import type { TccPhase } from '../../lib/shared-tables';

export type TccBranch = 'stock' | 'payment';

/**
 * The barrier insert as a statement of its own or as a data-modifying CTE of a participant's
 * statement (then `when` may make it depend on the statement's other parts): returns one row
 * (`transaction_id`) when this call wrote the row, none when it was already there.
 */
export function insertBarrierStatement(
  branch: TccBranch,
  orderId: string | RawBuilder<string>,
  operation: TccPhase,
  reason: TccPhase,
  when: RawBuilder<boolean> = sql<boolean>`true`,
): RawBuilder<{ transaction_id: string }> {
  return sql<{ transaction_id: string }>`
    INSERT INTO tcc_barriers (transaction_id, branch_id, operation, reason, created_at)
    SELECT ${orderId}, ${branch}, ${operation}, ${reason}, now() WHERE ${when}
    ON CONFLICT (transaction_id, branch_id, operation) DO NOTHING
    RETURNING transaction_id`;
}

/** Writes one barrier row in the caller's transaction (a Transaction); false when it was already there. */
export async function insertBarrier(trx: QueryExecutorProvider, branch: TccBranch, orderId: string, operation: TccPhase, reason: TccPhase): Promise<boolean> {
  const { rows } = await insertBarrierStatement(branch, orderId, operation, reason).execute(trx);
  return rows.length > 0;
}

/**
 * Who wrote the order's TRY row: a try, or a cancel that came first (undefined: neither yet).
 * `lock` takes the row FOR UPDATE, where the participant uses it as the per-order mutex.
 */
export async function tryBarrierWriter(trx: QueryExecutorProvider, branch: TccBranch, orderId: string, { lock }: { lock: boolean }): Promise<TccPhase | undefined> {
  const { rows } = await sql<{ reason: TccPhase }>`
    SELECT reason FROM tcc_barriers
    WHERE transaction_id = ${orderId} AND branch_id = ${branch} AND operation = 'try'
    ${lock ? sql`FOR UPDATE` : sql``}`.execute(trx);
  return rows[0]?.reason;
}
