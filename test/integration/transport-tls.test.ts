/**
 * Transport security for real, on servers of the test's own (other ports, throw-away certificates):
 * PostgreSQL with ssl=on that accepts TLS connections only, Redis with a TLS port and a password, and
 * a Temporal endpoint that demands a client certificate.
 * The clients are configured exactly as the services configure them, from the variables.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, type AddressInfo } from 'node:net';
import { createServer as createTlsServer, type Server } from 'node:tls';
import { Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { clientConfig } from '../../db/connection';
import { openServiceDatabase } from '../../db/databases';
import { loadConfig } from '../../lib/config';
import { connectRedis } from '../../lib/redis';
import { temporalConnectionOptions } from '../../lib/temporal-connection';
import { startThrowawayCluster, type ThrowawayCluster } from '../helpers/throwaway-postgres';
import { createTestCertificates, type TestCertificates } from '../helpers/tls';

let certs: TestCertificates;
beforeAll(async () => {
  certs = await createTestCertificates();
});
afterAll(() => certs?.remove());

/** The error a connection attempt ends with (undefined when it connects). */
async function connectError(config: pg.ClientConfig): Promise<{ code?: string; message: string } | undefined> {
  const client = new pg.Client(config);
  try {
    await client.connect();
    return undefined;
  } catch (error) {
    return error as { code?: string; message: string };
  } finally {
    await client.end().catch(() => undefined);
  }
}

describe('PostgreSQL over TLS', () => {
  const port = 25435;
  let cluster: ThrowawayCluster;
  const url = (params = '') => `postgres://oms_order:tls-test-password@127.0.0.1:${port}/postgres${params}`;

  beforeAll(async () => {
    cluster = await startThrowawayCluster({
      port,
      // Over TCP, TLS connections only: a plaintext login finds no matching rule.
      hba: 'local all postgres trust\nhostssl all all 127.0.0.1/32 scram-sha-256',
      settings: ['ssl=on', 'ssl_cert_file=server.crt', 'ssl_key_file=server.key'],
      files: { 'server.crt': certs.certFile, 'server.key': certs.keyFile },
    });
    const admin = new pg.Client({ connectionString: cluster.adminUrl });
    await admin.connect();
    await admin.query("CREATE ROLE oms_order LOGIN PASSWORD 'tls-test-password'");
    await admin.end();
  }, 120_000);
  afterAll(() => cluster?.stop());

  it('connects with TLS, the server verified against DATABASE_SSL_CA_FILE, through the services\' own pool', async () => {
    const config = loadConfig({ ORDER_DATABASE_URL: url(), DATABASE_SSL_CA_FILE: certs.caFile });
    const db = openServiceDatabase(config, 'order');
    try {
      const { rows } = await sql<{ ssl: boolean; version: string }>`SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()`.execute(db);
      expect(rows[0]?.ssl).toBe(true);
      expect(rows[0]?.version).toMatch(/^TLSv1\.[23]$/);
    } finally {
      await db.destroy();
    }
  });

  it('connects with sslmode and sslrootcert in the URL alone (verify-full)', async () => {
    expect(await connectError(clientConfig({ connectionString: url(`?sslmode=verify-full&sslrootcert=${encodeURIComponent(certs.caFile)}`) }))).toBeUndefined();
  });

  it('refuses a server whose certificate another CA signed, and a plaintext login', async () => {
    const untrusted = await connectError(clientConfig({ connectionString: url(), sslCaFile: certs.otherCaFile }));
    expect(untrusted?.message).toMatch(/self[- ]signed|unable to verify|certificate/i);
    const plaintext = await connectError(clientConfig({ connectionString: url('?sslmode=disable') }));
    expect(plaintext?.code).toBe('28000');
    expect(plaintext?.message).toContain('no encryption');
  });
});

describe('Redis with a password over TLS', () => {
  const port = 26390;
  const password = 'redis-tls-test-password';
  let server: ChildProcess;

  const portOpen = () =>
    new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });

  beforeAll(async () => {
    server = spawn(
      'redis-server',
      [
        '--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1',
        '--tls-cert-file', certs.certFile, '--tls-key-file', certs.keyFile, '--tls-ca-cert-file', certs.caFile,
        '--tls-auth-clients', 'no', '--requirepass', password, '--save', '', '--appendonly', 'no',
      ],
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 10_000;
    while (!(await portOpen())) {
      if (Date.now() > deadline || server.exitCode !== null) throw new Error('redis-server with TLS did not start');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });
  afterAll(() => {
    server?.kill('SIGTERM');
  });

  it('answers over rediss:// with the password, the server verified against REDIS_TLS_CA_FILE', async () => {
    const redis = await connectRedis(loadConfig({ REDIS_URL: `rediss://:${password}@127.0.0.1:${port}`, REDIS_TLS_CA_FILE: certs.caFile }));
    try {
      expect(await redis.ping()).toBe('PONG');
      expect(redis.stream).toHaveProperty('encrypted', true);
    } finally {
      redis.disconnect();
    }
  });

  it('is refused with a wrong password, an untrusted CA, or without TLS', async () => {
    await expect(connectRedis(loadConfig({ REDIS_URL: `rediss://:wrong@127.0.0.1:${port}`, REDIS_TLS_CA_FILE: certs.caFile }))).rejects.toThrow(/WRONGPASS|invalid username-password/);
    await expect(connectRedis(loadConfig({ REDIS_URL: `rediss://:${password}@127.0.0.1:${port}`, REDIS_TLS_CA_FILE: certs.otherCaFile }))).rejects.toThrow(/certificate|self[- ]signed/i);
    await expect(connectRedis(loadConfig({ REDIS_URL: `redis://:${password}@127.0.0.1:${port}` }))).rejects.toThrow(/not ready within 3 s/);
  });
});

describe('Temporal over mutual TLS', () => {
  // The dev server has no TLS listener, so a TLS endpoint that demands a client certificate from our
  // CA (as a production frontend with requireClientAuth does) forwards to it. gRPC needs ALPN h2.
  let endpoint: Server;
  let address: string;

  beforeAll(async () => {
    const [upstreamHost, upstreamPort] = inject('stack').TEMPORAL_ADDRESS.split(':') as [string, string];
    endpoint = createTlsServer(
      {
        cert: readFileSync(certs.certFile),
        key: readFileSync(certs.keyFile),
        ca: readFileSync(certs.caFile),
        requestCert: true,
        rejectUnauthorized: true,
        ALPNProtocols: ['h2'],
      },
      (client) => {
        const upstream = connect({ host: upstreamHost, port: Number(upstreamPort) });
        client.pipe(upstream).pipe(client);
        const close = () => {
          client.destroy();
          upstream.destroy();
        };
        client.on('error', close);
        upstream.on('error', close);
      },
    );
    await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
    address = `127.0.0.1:${(endpoint.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => endpoint.close(() => resolve())));

  /** The variables of a worker that holds a client certificate from our CA. */
  const tlsVariables = (): Record<string, string> => ({
    TEMPORAL_ADDRESS: address,
    TEMPORAL_TLS: 'true',
    TEMPORAL_TLS_CA_FILE: certs.caFile,
    TEMPORAL_TLS_CERT_FILE: certs.clientCertFile,
    TEMPORAL_TLS_KEY_FILE: certs.clientKeyFile,
    // The certificate names localhost and 127.0.0.1; the override is what a proxy in front needs.
    TEMPORAL_TLS_SERVER_NAME: 'localhost',
  });
  const tlsConfig = (overrides: Record<string, string> = {}) => loadConfig({ ...tlsVariables(), ...overrides });

  it('connects the client and the worker with the CA, client certificate and server name from configuration', async () => {
    const config = tlsConfig();
    const connection = await Connection.connect({ ...temporalConnectionOptions(config), connectTimeout: 5_000 });
    try {
      const { namespaceInfo } = await connection.workflowService.describeNamespace({ namespace: 'default' });
      expect(namespaceInfo?.name).toBe('default');
    } finally {
      await connection.close();
    }
    const native = await NativeConnection.connect(temporalConnectionOptions(config));
    try {
      const { namespaceInfo } = await native.workflowService.describeNamespace({ namespace: 'default' });
      expect(namespaceInfo?.name).toBe('default');
    } finally {
      await native.close();
    }
  });

  it('is refused without the client certificate, and against a server the CA did not sign', async () => {
    const { TEMPORAL_TLS_CERT_FILE: _cert, TEMPORAL_TLS_KEY_FILE: _key, ...withoutCertificate } = tlsVariables();
    await expect(NativeConnection.connect(temporalConnectionOptions(loadConfig(withoutCertificate)))).rejects.toThrow(/CertificateRequired|connection closed/);
    await expect(NativeConnection.connect(temporalConnectionOptions(tlsConfig({ TEMPORAL_TLS_CA_FILE: certs.otherCaFile })))).rejects.toThrow(/UnknownIssuer/);
  });
});
