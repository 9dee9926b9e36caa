/**
 * `tsx infra/seed-demo.ts`: demo data for trying OMS by hand: one active and one inactive customer
 * with payment accounts, and three products. Fixed ids, so the README's curl examples work, and
 * idempotent: running it again changes nothing. Importing it (for DEMO) writes nothing: only running
 * it as a script does.
 */
import { pathToFileURL } from 'node:url';
import { openServiceDatabase } from '../db/databases';
import { loadConfig } from '../services/shared/config';

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

/** Writes the demo data into the three databases, leaving rows that already exist as they are. */
export async function seedDemoData(): Promise<void> {
  const config = loadConfig();
  const orderDb = openServiceDatabase(config, 'order', 'oms-seed');
  const productDb = openServiceDatabase(config, 'product', 'oms-seed');
  const paymentDb = openServiceDatabase(config, 'payment', 'oms-seed');
  try {
    for (const { id, name, email, status, balanceMinor } of DEMO.customers) {
      await orderDb.insertInto('customers').values({ id, name, email, status }).onConflict((oc) => oc.column('id').doNothing()).execute();
      await paymentDb
        .insertInto('customer_accounts')
        .values({ customer_id: id, currency: DEMO.currency, balance_minor: balanceMinor })
        .onConflict((oc) => oc.column('customer_id').doNothing())
        .execute();
    }
    for (const { id, sku, name, priceMinor, stock } of DEMO.products) {
      await productDb
        .insertInto('products')
        .values({ id, sku, name, price_minor: priceMinor, currency: DEMO.currency, stock_quantity: stock })
        .onConflict((oc) => oc.column('sku').doNothing())
        .execute();
    }
    console.log('Demo data:');
    for (const c of DEMO.customers) console.log(`  customer ${c.id}  ${c.name} (${c.status}), account ${(c.balanceMinor / 100).toFixed(2)} ${DEMO.currency}`);
    for (const p of DEMO.products) console.log(`  product  ${p.id}  ${p.sku} ${p.name}, ${(p.priceMinor / 100).toFixed(2)} ${DEMO.currency}, ${p.stock} in stock`);
  } finally {
    await Promise.all([orderDb.destroy(), productDb.destroy(), paymentDb.destroy()]);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await seedDemoData();
