/**
 * A TCP proxy that can take its target off the network and put it back: while down it cuts every
 * open connection and refuses new ones, as a server that went away does. For gRPC (Temporal), whose
 * long-lived HTTP/2 connections an HTTP proxy (fault-proxy.ts) cannot stand in for. The shared
 * server behind it keeps running for everyone else.
 */
import { createConnection, createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface TcpProxy {
  /** host:port to connect to instead of the target. */
  address: string;
  setReachable: (reachable: boolean) => void;
  /** Connections refused while the target was unreachable. */
  refused: () => number;
  close: () => Promise<void>;
}

export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const [host, port] = target.split(':') as [string, string];
  let reachable = true;
  let refused = 0;
  const open = new Set<Socket>();
  const server = createServer((client) => {
    if (!reachable) {
      refused += 1;
      client.destroy();
      return;
    }
    const upstream = createConnection({ host, port: Number(port) });
    for (const socket of [client, upstream]) {
      open.add(socket);
      socket.on('close', () => open.delete(socket));
      socket.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: ownPort } = server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${ownPort}`,
    setReachable(next) {
      reachable = next;
      if (!next) for (const socket of open) socket.destroy();
    },
    refused: () => refused,
    close: async () => {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
