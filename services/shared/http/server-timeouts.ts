/**
 * Server timeouts, the same for every HTTP server OMS runs (the services and the worker's metrics
 * endpoint): a client that sends its headers or body slowly, or holds an idle connection open, is
 * cut off instead of holding a socket (and the memory behind it) for as long as it likes.
 */
import type { ServerOptions } from 'node:http';
import type { Config } from '../../../lib/config';

type TimeoutConfig = Pick<Config, 'HTTP_REQUEST_TIMEOUT_MS' | 'HTTP_HEADERS_TIMEOUT_MS' | 'HTTP_KEEP_ALIVE_TIMEOUT_MS' | 'HTTP_CONNECTION_TIMEOUT_MS'>;

/** Node's own http.Server options. */
export function nodeServerTimeouts(config: TimeoutConfig): ServerOptions {
  return {
    requestTimeout: config.HTTP_REQUEST_TIMEOUT_MS,
    headersTimeout: config.HTTP_HEADERS_TIMEOUT_MS,
    keepAliveTimeout: config.HTTP_KEEP_ALIVE_TIMEOUT_MS,
    // Node enforces the two timeouts above only when it sweeps its connections (every 30 s by
    // default), so a bound of a few seconds would be overshot by up to 30: sweep at least every second.
    connectionsCheckingInterval: Math.min(1_000, config.HTTP_HEADERS_TIMEOUT_MS),
  };
}

/** Fastify's options: it sets requestTimeout, keepAliveTimeout and the socket timeout itself and passes `http` to Node. */
export function serverTimeouts(config: TimeoutConfig) {
  return {
    requestTimeout: config.HTTP_REQUEST_TIMEOUT_MS,
    keepAliveTimeout: config.HTTP_KEEP_ALIVE_TIMEOUT_MS,
    connectionTimeout: config.HTTP_CONNECTION_TIMEOUT_MS,
    http: nodeServerTimeouts(config),
  };
}
