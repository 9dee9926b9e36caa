/**
 * A PostgreSQL cluster of a test's own, on its own port and in a temporary directory, for what the
 * shared one must not be put through (other authentication rules, TLS, an older layout). Run as the
 * postgres OS user when the tests run as root, as infra/stack.sh does.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const PG_BIN = '/usr/lib/postgresql/15/bin';

/** Runs a command as the postgres OS user (when root), from / so the working directory does not matter. */
export function asPostgres(command: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  if (process.getuid?.() === 0) return run('runuser', ['-u', 'postgres', '--', command, ...args], { cwd: '/' });
  return run(command, args);
}

export interface ThrowawayCluster {
  port: number;
  data: string;
  /** The superuser's URL, through the socket. */
  adminUrl: string;
  stop: () => Promise<void>;
}

/**
 * initdb into `data` (created when missing), writes `hba` as pg_hba.conf, copies `files` into the
 * data directory (owned by postgres, mode 0600: the server refuses a readable key) and starts the
 * server with `settings` on 127.0.0.1:`port`, socket in /tmp.
 */
export async function startThrowawayCluster({
  port,
  data,
  hba,
  settings = [],
  files = {},
}: {
  port: number;
  data?: string;
  hba: string;
  settings?: string[];
  files?: Record<string, string>;
}): Promise<ThrowawayCluster> {
  let removeParent: string | undefined;
  if (!data) {
    removeParent = await mkdtemp(join(tmpdir(), 'oms-pg-'));
    await chmod(removeParent, 0o755);
    data = join(removeParent, 'data');
  }
  await mkdir(data, { recursive: true, mode: 0o700 });
  if (process.getuid?.() === 0) await run('chown', ['postgres:postgres', data]);
  await asPostgres(join(PG_BIN, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C']);
  await asPostgres('sh', ['-c', `cat > '${data}/pg_hba.conf' <<'HBA'\n${hba}\nHBA`]);
  for (const [name, source] of Object.entries(files)) {
    await asPostgres('sh', ['-c', `cat '${source}' > '${data}/${name}' && chmod 600 '${data}/${name}'`]);
  }
  const options = [`-p ${port}`, '-k /tmp', '-c listen_addresses=127.0.0.1', ...settings.map((s) => `-c ${s}`)].join(' ');
  await asPostgres(join(PG_BIN, 'pg_ctl'), ['-D', data, '-w', '-t', '60', '-o', options, '-l', `${data}/server.log`, 'start']);
  const cluster: ThrowawayCluster = {
    port,
    data,
    adminUrl: `postgres://postgres@localhost/postgres?host=/tmp&port=${port}`,
    stop: async () => {
      await asPostgres(join(PG_BIN, 'pg_ctl'), ['-D', cluster.data, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
      if (removeParent) await rm(removeParent, { recursive: true, force: true });
    },
  };
  return cluster;
}
