import type { LoggerOptions } from 'pino';
import type { Config } from './config';

/** Structured JSON logs; every line names the process it came from. */
export function loggerOptions(config: Config, name: string): LoggerOptions {
  return {
    name,
    level: config.LOG_LEVEL,
    base: { service: name },
    redact: { paths: ['req.headers.authorization', 'headers.authorization'], censor: '[redacted]' },
  };
}
