import type { Kysely } from 'kysely';
import type { PaymentDatabase } from '../../../db/payment/schema';
import type { Config } from '../../../lib/config';
import type { TccMetrics } from '../../shared/tcc-metrics';

/** What every payment route plugin is given. */
export interface PaymentRouteOptions {
  db: Kysely<PaymentDatabase>;
  config: Config;
  metrics: TccMetrics;
}
