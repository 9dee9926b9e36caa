/** Reading Prometheus metrics in tests: from a prom-client registry or from a /metrics page. */
import type { Registry } from 'prom-client';

/** Sum of the samples of `name` whose labels include `labels` (0 when there are none). */
export function sampleSum(exposition: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of exposition.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    const present = new Map([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, want]) => present.get(key) === want)) sum += Number(match[3]);
  }
  return sum;
}

/** Whether a sample of `name` with these labels is exposed at all (a gauge reading 0 still is). */
export function hasSample(exposition: string, name: string, labels: Record<string, string> = {}): boolean {
  return exposition.split('\n').some((line) => line.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)));
}

export async function scrape(source: Registry | string): Promise<string> {
  if (typeof source !== 'string') return source.metrics();
  const response = await fetch(new URL('/metrics', source));
  if (!response.ok) throw new Error(`GET ${source}/metrics answered ${response.status}`);
  return response.text();
}
