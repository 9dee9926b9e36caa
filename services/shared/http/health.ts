/**
 * GET /health checks every dependency the service uses and answers 503 if one is down;
 * GET /health/live only says the process answers (what peers and load balancers poll, so a
 * service's health never recurses through its peers' dependencies). Anyone may call them, so the
 * answer is UP or DOWN per dependency; why one is down (an error that may name hosts, ports or
 * users) goes to the log only.
 */
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';

export interface HealthCheck {
  name: string;
  /** Resolves when the dependency answers; rejects (or times out) when it does not. */
  check: () => Promise<unknown>;
}

export interface HealthOptions {
  service: string;
  checks: HealthCheck[];
  timeoutMs?: number;
}

const checkResultSchema = z.object({
  status: z.enum(['UP', 'DOWN']),
  latencyMs: z.number(),
});

const healthSchema = z
  .object({
    service: z.string(),
    status: z.enum(['UP', 'DOWN']),
    checks: z.record(z.string(), checkResultSchema),
  })
  .meta({ id: 'Health' });

type CheckResult = z.infer<typeof checkResultSchema>;

async function runCheck(check: HealthCheck, timeoutMs: number, log: FastifyBaseLogger): Promise<CheckResult> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check.check(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return { status: 'UP', latencyMs: Math.round(performance.now() - started) };
  } catch (error) {
    log.warn({ err: error, dependency: check.name }, 'health check failed');
    return { status: 'DOWN', latencyMs: Math.round(performance.now() - started) };
  } finally {
    clearTimeout(timer);
  }
}

export const healthPlugin = fp(
  (app: FastifyInstance, { service, checks, timeoutMs = 2_000 }: HealthOptions) => {
    const routes = app.withTypeProvider<ZodTypeProvider>();
    routes.get(
      '/health',
      {
        // Probes poll it on a schedule: never throttled per address.
        config: { rateLimit: false },
        schema: {
          tags: ['operations'],
          summary: 'Readiness: checks every dependency this service uses',
          response: { 200: healthSchema, 503: healthSchema },
        },
      },
      async (request, reply) => {
        const results = await Promise.all(checks.map(async (check) => [check.name, await runCheck(check, timeoutMs, request.log)] as const));
        const up = results.every(([, result]) => result.status === 'UP');
        return reply.status(up ? 200 : 503).send({ service, status: up ? 'UP' : 'DOWN', checks: Object.fromEntries(results) });
      },
    );
    routes.get(
      '/health/live',
      {
        config: { rateLimit: false },
        schema: {
          tags: ['operations'],
          summary: 'Liveness: the process answers',
          response: { 200: z.object({ service: z.string(), status: z.literal('UP') }) },
        },
      },
      () => ({ service, status: 'UP' as const }),
    );
  },
  { name: 'oms-health' },
);
