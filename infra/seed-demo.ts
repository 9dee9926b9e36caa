/**
 * `tsx infra/seed-demo.ts`: demo data for trying OMS by hand: one active and one inactive customer
 * with payment accounts, and three products. Fixed ids, so the README's curl examples work, and
 * idempotent: running it again changes nothing. Importing it (for DEMO) writes nothing: only running
 * it as a script does.
 *
 * Customers, products and accounts go through the services' own write path (createCustomer,
 * createProduct, openAccount), so their events exist: CUSTOMER_CREATED like any other customer's,
 * and PRODUCT_CREATED, which is what fills the order service's catalogue read model.
 */
import { pathToFileURL } from 'node:url';
import { openServiceDatabase } from '../db/databases';
import { createCustomer } from '../services/order/customers';
import { findCustomer } from '../services/order/repository';
import { openAccount } from '../services/payment/ledger';
import { createProduct } from '../services/product/catalogue';
import { findProductById } from '../services/product/repository';
import { loadConfig } from '../lib/config';

export const DEMO = {
  customers: [
    { id: '0d9a3c1e-0000-4000-8000-00000000c001', name: 'Ada Lovelace', email: 'ada@example.com', status: 'ACTIVE', balanceMinor: 500_000 },
    { id: '0d9a3c1e-0000-4000-8000-00000000c002', name: 'Charles Babbage', email: 'charles@example.com', status: 'INACTIVE', balanceMinor: 100_000 },
  ],
  products: [
    { id: '0d9a3c1e-0000-4000-8000-00000000a001', sku: 'KB-001', name: 'Mechanical keyboard', priceMinor: 8_999, stock: 100 },
    { id: '0d9a3c1e-0000-4000-8000-00000000a002', sku: 'MS-002', name: 'Wireless mouse', priceMinor: 2_450, stock: 250 },
    { id: '0d9a3c1e-0000-4000-8000-00000000a003', sku: 'MN-003', name: '27" monitor', priceMinor: 32_900, stock: 5 },
  ],
  currency: 'USD',
} as const;

/** Writes the demo data, leaving what already exists as it is. */
export async function seedDemoData(): Promise<void> {
  const config = loadConfig();
  const orderDb = openServiceDatabase(config, 'order', 'oms-seed');
  const productDb = openServiceDatabase(config, 'product', 'oms-seed');
  const paymentDb = openServiceDatabase(config, 'payment', 'oms-seed');
  try {
    for (const { id, name, email, status, balanceMinor } of DEMO.customers) {
      if (!(await findCustomer(orderDb, id))) await createCustomer(orderDb, { name, email, status }, id);
      const hasAccount = await paymentDb.selectFrom('customer_accounts').select('customer_id').where('customer_id', '=', id).executeTakeFirst();
      if (!hasAccount) await openAccount(paymentDb, { customerId: id, balanceMinor, currency: DEMO.currency });
    }
    for (const { id, sku, name, priceMinor, stock } of DEMO.products) {
      if (await findProductById(productDb, id)) continue;
      await createProduct(productDb, { sku, name, description: null, price: priceMinor, currency: DEMO.currency, stockQuantity: stock }, id);
    }
    console.log('Demo data:');
    for (const c of DEMO.customers) console.log(`  customer ${c.id}  ${c.name} (${c.status}), account ${(c.balanceMinor / 100).toFixed(2)} ${DEMO.currency}`);
    for (const p of DEMO.products) console.log(`  product  ${p.id}  ${p.sku} ${p.name}, ${(p.priceMinor / 100).toFixed(2)} ${DEMO.currency}, ${p.stock} in stock`);
  } finally {
    await Promise.all([orderDb.destroy(), productDb.destroy(), paymentDb.destroy()]);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await seedDemoData();
