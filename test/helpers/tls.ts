/**
 * Throw-away certificates for transport tests: a CA, a server certificate it signed for
 * 127.0.0.1 / localhost and a client certificate, made with openssl in a temporary directory.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestCertificates {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  /** A client certificate and key the CA signed, for mutual TLS. */
  clientCertFile: string;
  clientKeyFile: string;
  /** A second CA that signed nothing here: trusting only it must fail verification. */
  otherCaFile: string;
  remove: () => Promise<void>;
}

async function makeCa(dir: string, name: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${name}`, '-keyout', key, '-out', cert]);
  return { cert, key };
}

export async function createTestCertificates(): Promise<TestCertificates> {
  const dir = await mkdtemp(join(tmpdir(), 'oms-tls-'));
  // Servers running as another OS user (postgres) read the files from here.
  await chmod(dir, 0o755);
  const ca = await makeCa(dir, 'oms-test-ca');
  const other = await makeCa(dir, 'oms-other-ca');
  const keyFile = join(dir, 'server.key');
  const csr = join(dir, 'server.csr');
  const certFile = join(dir, 'server.crt');
  const extensions = join(dir, 'server.ext');
  await run('sh', ['-c', `printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > '${extensions}'`]);
  await run('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', keyFile, '-out', csr]);
  await run('openssl', ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '1', '-extfile', extensions, '-out', certFile]);
  const clientKeyFile = join(dir, 'client.key');
  const clientCsr = join(dir, 'client.csr');
  const clientCertFile = join(dir, 'client.crt');
  await run('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=oms-worker', '-keyout', clientKeyFile, '-out', clientCsr]);
  // Extensions make it an X.509 v3 certificate; rustls (the Temporal worker's TLS) refuses v1.
  const clientExtensions = join(dir, 'client.ext');
  await run('sh', ['-c', `printf 'extendedKeyUsage=clientAuth\\n' > '${clientExtensions}'`]);
  await run('openssl', ['x509', '-req', '-in', clientCsr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '1', '-extfile', clientExtensions, '-out', clientCertFile]);
  for (const file of [ca.cert, other.cert, certFile, keyFile, clientCertFile, clientKeyFile]) await chmod(file, 0o644);
  return { dir, caFile: ca.cert, certFile, keyFile, clientCertFile, clientKeyFile, otherCaFile: other.cert, remove: () => rm(dir, { recursive: true, force: true }) };
}
