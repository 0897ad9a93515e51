// Structured JSON logs (pino). Every log line about a request carries `request_id`.
import { pino, type Logger } from 'pino';

export type { Logger };

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** SLUICE_LOG_LEVEL overrides the configured level. */
export function createLogger(level: LogLevel, name: string): Logger {
  const env = process.env.SLUICE_LOG_LEVEL;
  return pino({ name, level: env !== undefined && env !== '' ? env : level, base: { pid: process.pid } });
}
