/** Customers as the order service writes them: each with its CUSTOMER_CREATED event, in one transaction. */
import { ConflictError } from '../shared/errors';
import { appendOutboxEvent } from '../../lib/outbox';
import { ORDER_ERROR_CODES } from './schemas';
import { insertCustomer, type CustomerRow, type NewCustomer, type OrderDb } from './repository';

function isEmailTaken(error: unknown): boolean {
  const pgError = error as { code?: string; constraint?: string };
  return pgError.code === '23505' && pgError.constraint === 'uq_customers_email';
}

/**
 * Creates a customer and its CUSTOMER_CREATED event; a taken email is refused with 409. `fixedId`
 * is for the demo data only (its README examples name the customers).
 */
export async function createCustomer(db: OrderDb, customer: NewCustomer, fixedId?: string): Promise<CustomerRow> {
  try {
    return await db.transaction().execute(async (trx) => {
      const inserted = await insertCustomer(trx, customer, fixedId);
      await appendOutboxEvent(trx, {
        eventType: 'CUSTOMER_CREATED',
        aggregateId: inserted.id,
        correlationId: inserted.id,
        payload: { customerId: inserted.id, email: inserted.email, status: inserted.status },
      });
      return inserted;
    });
  } catch (error) {
    if (isEmailTaken(error)) {
      throw new ConflictError(ORDER_ERROR_CODES.emailAlreadyExists, `a customer with email ${customer.email} already exists`, { email: customer.email });
    }
    throw error;
  }
}
