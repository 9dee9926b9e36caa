/** `tsx db/migrate.ts [order|product|payment ...]`: migrates the named service databases (default: all), as their owners. */
import { loadConfig } from '../lib/config';
import { openMigrationDatabase } from './databases';
import { migrateToLatest, SERVICE_NAMES, type ServiceName } from './migrator';

const requested = process.argv.slice(2);
const unknown = requested.filter((name) => !SERVICE_NAMES.includes(name as ServiceName));
if (unknown.length > 0) {
  console.error(`unknown service(s): ${unknown.join(', ')}; expected ${SERVICE_NAMES.join(', ')}`);
  process.exit(2);
}
const services = requested.length > 0 ? (requested as ServiceName[]) : SERVICE_NAMES;
const config = loadConfig();

for (const service of services) {
  const db = openMigrationDatabase(config, service);
  try {
    const { results = [], privileges } = await migrateToLatest(db, service);
    const applied = results.filter((r) => r.status === 'Success').map((r) => r.migrationName);
    console.log(`${service}_db: ${applied.length > 0 ? `applied ${applied.join(', ')}` : 'up to date'}`);
    if (privileges === 'worker-role-missing') console.warn(`${service}_db: role oms_worker does not exist; run db/provision.ts, then migrate again`);
  } finally {
    await db.destroy();
  }
}
