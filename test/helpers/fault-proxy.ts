/**
 * An HTTP proxy in front of a participant that injects the faults a network really produces, so
 * production code needs no fault hooks: refuse a call (the service is down), or serve it and lose
 * its answer (the call took effect; the caller never hears so and retries), or deliver it late
 * (it reaches the participant only after the caller's timeout, possibly after the caller's retry).
 * Each request is judged by a rule that a test may change at any time.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Fault = 'pass' | 'refuse' | 'lose-answer' | 'late';
export type FaultRule = (request: { method: string; path: string }) => Fault;

export interface FaultProxy {
  url: string;
  setRule: (rule: FaultRule) => void;
  /** What each request met, in arrival order. */
  log: { method: string; path: string; fault: Fault }[];
  /** Resolves once every request received so far has been answered or dropped (a late one included). */
  settled: () => Promise<void>;
  close: () => Promise<void>;
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** How long a `late` request is held before it is forwarded: longer than the caller's HTTP timeout. */
export const LATE_DELAY_MS = 6_000;

export async function startFaultProxy(targetUrl: string, initialRule: FaultRule = () => 'pass', lateDelayMs = LATE_DELAY_MS): Promise<FaultProxy> {
  let rule = initialRule;
  const log: FaultProxy['log'] = [];
  const inFlight = new Set<Promise<void>>();
  const server = createServer((request, response) => {
    const method = request.method ?? 'GET';
    const path = request.url ?? '/';
    const fault = rule({ method, path });
    log.push({ method, path, fault });
    if (fault === 'refuse') {
      request.socket.destroy();
      return;
    }
    const handled = (async () => {
      const body = await readBody(request);
      // The caller times out and retries meanwhile; this copy still arrives, out of order.
      if (fault === 'late') await new Promise((resolve) => setTimeout(resolve, lateDelayMs));
      const headers = Object.fromEntries(Object.entries(request.headers).filter(([name]) => name !== 'host' && name !== 'content-length')) as Record<string, string>;
      const upstream = await fetch(new URL(path, targetUrl), { method, headers, ...(body.length > 0 ? { body } : {}) });
      const answer = Buffer.from(await upstream.arrayBuffer());
      if (fault === 'lose-answer') {
        // The participant has committed; the caller sees the connection drop.
        request.socket.destroy();
        return;
      }
      response.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' });
      response.end(answer);
    })().catch(() => {
      request.socket.destroy();
    });
    inFlight.add(handled);
    void handled.finally(() => inFlight.delete(handled));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    setRule: (next) => {
      rule = next;
    },
    log,
    settled: async () => {
      while (inFlight.size > 0) await Promise.all(inFlight);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
