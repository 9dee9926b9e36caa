/**
 * infra/balancer.ts, the production topology's load balancer: what it repeats on the other instance
 * when one fails decides whether an instance's death can cause a duplicate effect.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startBalancer } from '../../infra/balancer';

const servers: http.Server[] = [];

async function listen(handler: http.RequestListener): Promise<number> {
  const server = http.createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** A port nothing listens on: taken, then released. */
async function deadPort(): Promise<number> {
  const port = await listen(() => undefined);
  const server = servers.pop()!;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** An instance that answers with its name, counting the requests it saw. */
function instance(name: string, seen: string[]): http.RequestListener {
  return (request, response) => {
    seen.push(name);
    request.resume();
    request.on('end', () => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ name })));
  };
}

/** An instance that dies holding the request: it reads it, then drops the connection without an answer. */
function dyingInstance(seen: string[]): http.RequestListener {
  return (request) => {
    seen.push('dying');
    request.resume();
    request.on('end', () => request.socket.destroy());
  };
}

async function balancer(upstreams: number[]): Promise<number> {
  const port = await deadPort();
  servers.push(...(await startBalancer([`${port}=${upstreams.join(',')}`])));
  return port;
}

async function post(port: number, headers: Record<string, string> = {}): Promise<{ status: number; body: { name?: string; error?: { code: string } } }> {
  const response = await fetch(`http://127.0.0.1:${port}/orders`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{"a":1}' });
  return { status: response.status, body: (await response.json()) as { name?: string; error?: { code: string } } };
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

describe('balancer', () => {
  it('takes turns between the instances', async () => {
    const seen: string[] = [];
    const port = await balancer([await listen(instance('a', seen)), await listen(instance('b', seen))]);
    for (let i = 0; i < 4; i++) expect((await post(port)).status).toBe(200);
    expect(seen.sort()).toEqual(['a', 'a', 'b', 'b']);
  });

  it('sends a request a dead instance refused to the other one', async () => {
    const seen: string[] = [];
    const port = await balancer([await deadPort(), await listen(instance('b', seen))]);
    for (let i = 0; i < 3; i++) expect((await post(port)).body).toEqual({ name: 'b' });
    expect(seen).toEqual(['b', 'b', 'b']);
  });

  it('does not repeat a request without an Idempotency-Key that an instance died holding: 502', async () => {
    const seen: string[] = [];
    const port = await balancer([await listen(dyingInstance(seen)), await listen(instance('b', seen))]);
    expect(await post(port)).toMatchObject({ status: 502, body: { error: { code: 'UPSTREAM_FAILED' } } });
    expect(seen).toEqual(['dying']);
  });

  it('repeats such a request on the other instance when it carries an Idempotency-Key', async () => {
    const seen: string[] = [];
    const port = await balancer([await listen(dyingInstance(seen)), await listen(instance('b', seen))]);
    expect(await post(port, { 'idempotency-key': 'k-1' })).toEqual({ status: 200, body: { name: 'b' } });
    expect(seen).toEqual(['dying', 'b']);
  });

  it('answers 502 UPSTREAM_FAILED when no instance is up', async () => {
    const port = await balancer([await deadPort(), await deadPort()]);
    expect(await post(port)).toMatchObject({ status: 502, body: { error: { code: 'UPSTREAM_FAILED' } } });
  });
});
