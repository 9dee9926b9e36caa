import { defineConfig } from 'vitest/config';

// Unit tests need nothing running; integration tests talk to the real PostgreSQL, Redis, Kafka and
// Temporal started by `./oms test` (or by testcontainers when OMS_TESTCONTAINERS=1).
export default defineConfig({
  test: {
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'] },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          globalSetup: ['test/setup/global-setup.ts'],
          include: ['test/integration/**/*.test.ts', 'test/workflows/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          // Two cores: suites share one Temporal server and Kafka broker, so run files one by one.
          fileParallelism: false,
        },
      },
      {
        extends: true,
        test: {
          // Failure tests of the production topology (./oms test --topology production runs them):
          // they kill brokers, workers, service instances and restart Temporal on the running system.
          name: 'topology',
          globalSetup: ['test/topology/global-setup.ts'],
          include: ['test/topology/**/*.test.ts'],
          testTimeout: 900_000,
          hookTimeout: 300_000,
          fileParallelism: false,
        },
      },
      {
        extends: true,
        test: {
          // The fault suite (docs/reliability.md): it starts a whole OMS of its own at a port offset
          // (test/faults/private-stack.ts), so it needs no global setup. The short set here;
          // `./oms test faults` runs every scenario.
          name: 'faults',
          include: ['test/faults/**/*.test.ts'],
          testTimeout: 1_200_000,
          hookTimeout: 900_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
