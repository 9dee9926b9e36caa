/** `tsx infra/topics.ts`: creates the OMS Kafka topics that are missing and deletes retired ones (idempotent). */
import { createKafka, ensureTopics } from '../lib/kafka';
import { loadConfig } from '../lib/config';

const config = loadConfig();
const { created, existing, deleted } = await ensureTopics(createKafka(config, 'oms-topics'), config);
console.log(`kafka topics: ${created.length > 0 ? `created ${created.join(', ')}` : 'none created'}; ${existing.length} already present${deleted.length > 0 ? `; deleted retired ${deleted.join(', ')}` : ''}`);
