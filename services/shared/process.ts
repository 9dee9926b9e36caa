/** Process lifecycle shared by every OMS entry point: shut down cleanly on SIGTERM/SIGINT, exactly once. */
import type { Logger } from 'pino';

export type Closer = () => unknown;

export function onShutdown(logger: Logger, closers: Closer[], { graceMs = 15_000 } = {}): void {
  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      logger.error({ graceMs }, 'shutdown took too long; exiting');
      process.exit(1);
    }, graceMs);
    force.unref();
    void (async () => {
      let failed = false;
      for (const close of closers) {
        try {
          await close();
        } catch (error) {
          failed = true;
          logger.error({ err: error }, 'error during shutdown');
        }
      }
      process.exit(failed ? 1 : 0);
    })();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
