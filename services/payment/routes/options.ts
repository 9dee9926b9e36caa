import type { Kysely } from 'kysely';
import type { PaymentDatabase } from '../../../db/payment/schema';
import type { Config } from '../../shared/config';
import type { PaymentMetrics } from '../metrics';

/** What every payment route plugin is given. */
export interface PaymentRouteOptions {
  db: Kysely<PaymentDatabase>;
  config: Config;
  metrics: PaymentMetrics;
}
