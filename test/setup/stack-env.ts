/** Where the integration tests find the real stack: environment overrides handed from global setup to every test file. */
import 'vitest';
export interface StackEnv {
  /** Maintenance database URL, for creating and dropping per-suite databases. */
  PG_ADMIN_URL: string;
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
