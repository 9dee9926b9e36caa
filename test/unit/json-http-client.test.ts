/**
 * The activities' client for the TCC participants (activities/http.ts), against a real HTTP server
 * on a free port: what it sends, what it treats as transient, and that its keep-alive pool never
 * sends a request down a connection the server has already given up.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJsonHttpClient, errorCode, ParticipantUnavailableError } from '../../activities/http';
import { REQUEST_ID_HEADER, withCorrelationId } from '../../lib/correlation';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  socket: number;
}

let server: Server;
let baseUrl: string;
const seen: Seen[] = [];
/** Each connection's number, in the order the server accepted them, and those now closed. */
const sockets = new WeakMap<object, number>();
const closedSockets = new Set<number>();
let accepted = 0;
const IDLE_CLOSE_MS = 1_000;

function answer(response: ServerResponse, status: number, body: string, contentType = 'application/json'): void {
  response.writeHead(status, { 'content-type': contentType });
  response.end(body);
}

beforeAll(async () => {
  server = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      seen.push({ method: request.method!, url: request.url!, headers: request.headers, body, socket: sockets.get(request.socket)! });
      if (request.url === '/ok') return answer(response, 201, JSON.stringify({ reservationId: 'r-1' }));
      if (request.url === '/rejected') return answer(response, 422, JSON.stringify({ error: { code: 'INSUFFICIENT_STOCK', message: 'not enough' } }));
      if (request.url === '/unavailable') return answer(response, 503, 'down for maintenance', 'text/plain');
      if (request.url === '/slow-down') return answer(response, 429, '{}');
      if (request.url === '/empty') return answer(response, 200, '');
      if (request.url === '/hang') return; // never answers
      answer(response, 404, '{}');
    });
  });
  // Like a proxy in front of a participant: it closes a connection idle for a second and gives no
  // Keep-Alive hint, so the client cannot know when that happens.
  server.keepAliveTimeout = 0;
  server.on('connection', (socket) => {
    const number = accepted++;
    sockets.set(socket, number);
    socket.setTimeout(IDLE_CLOSE_MS, () => socket.destroy());
    socket.on('close', () => closedSockets.add(number));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const client = () => createJsonHttpClient({ baseUrl, credential: 'worker-secret', timeoutMs: 500 });

describe('the participants client', () => {
  it('posts JSON with the credential and the saga correlation id, and parses the answer', async () => {
    const response = await withCorrelationId('order-123', () => client().post('/ok', { orderId: 'o-1' }));
    expect(response).toEqual({ status: 201, body: { reservationId: 'r-1' } });
    const request = seen.at(-1)!;
    expect(request).toMatchObject({ method: 'POST', url: '/ok', body: '{"orderId":"o-1"}' });
    expect(request.headers).toMatchObject({ authorization: 'Bearer worker-secret', 'content-type': 'application/json', [REQUEST_ID_HEADER]: 'order-123' });
  });

  it('sends an empty JSON object when a POST has no body, and no body or content type on a GET', async () => {
    await client().post('/ok');
    expect(seen.at(-1)!.body).toBe('{}');
    await client().get('/ok');
    expect(seen.at(-1)).toMatchObject({ method: 'GET', body: '' });
    expect(seen.at(-1)!.headers['content-type']).toBeUndefined();
  });

  it("returns a participant's 4xx for the caller to map", async () => {
    const response = await client().post('/rejected', {});
    expect(response.status).toBe(422);
    expect(errorCode(response)).toBe('INSUFFICIENT_STOCK');
    expect(await client().post('/empty', {})).toEqual({ status: 200, body: null });
  });

  it('throws a retryable error on 5xx and 429', async () => {
    await expect(client().post('/unavailable', {})).rejects.toThrow(ParticipantUnavailableError);
    await expect(client().post('/unavailable', {})).rejects.toThrow('POST /unavailable answered 503: down for maintenance');
    await expect(client().post('/slow-down', {})).rejects.toThrow(ParticipantUnavailableError);
  });

  it('gives up on a participant that does not answer within its timeout', async () => {
    const started = performance.now();
    await expect(client().post('/hang', {})).rejects.toThrow();
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('fails (retryably) when nothing listens', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const error = await createJsonHttpClient({ baseUrl: `http://127.0.0.1:${port}`, credential: 'x', timeoutMs: 500 }).post('/ok', {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(ParticipantUnavailableError);
  });

  it('keeps its connections open between calls, and opens a new one after the server closed an idle one', async () => {
    const participant = client();
    const before = seen.length;
    for (let i = 0; i < 20; i += 1) await participant.post('/ok', {});
    // A request may go out before the previous one's connection is back in the pool: two at most.
    const used = new Set(seen.slice(before).map((request) => request.socket));
    expect(used.size).toBeLessThanOrEqual(2);

    // Wait until the server has closed them all, then call again: the request must not be lost on
    // a dead socket (an ECONNRESET would fail the saga step).
    const deadline = Date.now() + 5_000;
    while ([...used].some((socket) => !closedSockets.has(socket)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect([...used].filter((socket) => !closedSockets.has(socket))).toEqual([]);
    expect(await participant.post('/ok', {})).toMatchObject({ status: 201 });
    expect(used.has(seen.at(-1)!.socket)).toBe(false);
  });
});
