/** Where the integration tests find the real stack: environment overrides handed from global setup to every test file. */
import 'vitest';
export interface StackEnv {
  /** Administrator's URL (maintenance database), for provisioning roles and creating and dropping per-suite databases. */
  PG_ADMIN_URL: string;
  /** host:port where the service and worker roles log in (over TCP, with their passwords). */
  PG_HOST: string;
  REDIS_URL: string;
  KAFKA_BROKERS: string;
  TEMPORAL_ADDRESS: string;
  TEMPORAL_UI_URL: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    stack: StackEnv;
  }
}
