// Structured JSON logs (pino). One root logger per process; components take a named child
// (componentLogger) and requests a child carrying request_id, tenant and class (requestLogger).
// The level comes from config `log.level`, overridden by SLUICE_LOG_LEVEL, and can change at
// run time (SIGHUP reload) for the root and every component logger.
import pino, { type DestinationStream, type Level, type Logger } from 'pino';
import { ConfigError } from '../config/load.ts';
import type { TrafficClass } from '../transport/types.ts';

export type LogLevel = Level | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
export const LOG_LEVEL_ENV = 'SLUICE_LOG_LEVEL';

export type { Logger } from 'pino';

/** Paths never written to logs (credentials that may ride along in logged objects). */
const REDACT_PATHS = [
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'headers["x-api-key"]',
  'apiKey',
  '*.apiKey',
  'token',
  '*.token',
  'key',
  '*.key',
  'secret',
  '*.secret',
];

/** The effective level: SLUICE_LOG_LEVEL wins over the config file. */
export function resolveLogLevel(configLevel: LogLevel, env: NodeJS.ProcessEnv = process.env): LogLevel {
  const raw = env[LOG_LEVEL_ENV];
  if (raw === undefined || raw === '') return configLevel;
  const v = raw.trim().toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(v)) {
    throw new ConfigError(`${LOG_LEVEL_ENV}: expected ${LOG_LEVELS.map((l) => JSON.stringify(l)).join(' | ')}, got ${JSON.stringify(raw)}`);
  }
  return v as LogLevel;
}

export interface LoggingOptions {
  level: LogLevel;
  /** Node name from config, on every line. */
  node?: string;
  /** Where lines go; default stdout (asynchronous, flushed on drain and exit). */
  destination?: DestinationStream;
}

export interface RequestLogContext {
  requestId: string;
  tenant?: string | number;
  cls?: TrafficClass;
  model?: string;
}

export class Logging {
  readonly root: Logger;
  private readonly components = new Map<string, Logger>();
  private readonly stream: DestinationStream;

  constructor(opts: LoggingOptions) {
    this.stream = opts.destination ?? pino.destination({ dest: 1, sync: false });
    this.root = pino(
      {
        level: opts.level,
        base: { service: 'sluice', node: opts.node ?? 'sluice', pid: process.pid },
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
        serializers: { err: pino.stdSerializers.err },
        redact: { paths: REDACT_PATHS, censor: '[redacted]' },
        onChild: replaceRepeatedBindings,
      },
      this.stream,
    );
  }

  get level(): LogLevel {
    return this.root.level as LogLevel;
  }

  /** A long-lived logger for one part of sluice (e.g. "ingress.grpc", "link.inference"). */
  component(name: string): Logger {
    let l = this.components.get(name);
    if (l === undefined) {
      l = this.root.child({ component: name });
      this.components.set(name, l);
    }
    return l;
  }

  /** Changes the level of the root and every component logger (request loggers are short-lived). */
  setLevel(level: LogLevel): void {
    this.root.level = level;
    for (const l of this.components.values()) l.level = level;
  }

  /** Writes out buffered lines (call before exit). */
  flush(): Promise<void> {
    return new Promise((resolve) => {
      this.root.flush((err) => {
        if (err) process.stderr.write(`sluice: log flush failed: ${err.message}\n`);
        resolve();
      });
    });
  }

  /** Last-chance synchronous flush for an immediate exit. */
  flushSync(): void {
    const s = this.stream as DestinationStream & { flushSync?: () => void };
    try {
      s.flushSync?.();
    } catch {
      // The stream may already be closed or not yet open; nothing more can be done on the way out.
    }
  }
}

const { chindingsSym } = pino.symbols;

/**
 * pino appends a child's bindings to its parent's, so `logger.child({ component: 'http' })` of a
 * component logger wrote `"component"` twice and strict JSON parsers refused the line. Here a
 * child's binding replaces the parent's of the same name (the more specific one wins). Runs once
 * per child logger (they are made at start-up, not per request), never per line.
 */
function replaceRepeatedBindings(child: Logger): void {
  const holder = child as unknown as Record<symbol, string>;
  const chindings = holder[chindingsSym];
  if (typeof chindings !== 'string' || chindings.length === 0) return;
  // The bindings are already serialized (and redacted): `,"k":v,"k2":v2`. Parsing keeps the last
  // value of a repeated key; the order of first appearance is kept.
  const merged = JSON.parse(`{${chindings.slice(1)}}`) as Record<string, unknown>;
  holder[chindingsSym] = `,${JSON.stringify(merged).slice(1, -1)}`;
}

/** A per-request child logger: every line carries request_id, tenant and class. */
export function requestLogger(parent: Logger, ctx: RequestLogContext): Logger {
  const bindings: Record<string, string | number> = { request_id: ctx.requestId };
  if (ctx.tenant !== undefined) bindings.tenant = ctx.tenant;
  if (ctx.cls !== undefined) bindings.class = ctx.cls;
  if (ctx.model !== undefined) bindings.model = ctx.model;
  return parent.child(bindings);
}

/**
 * A root logger for a process that needs nothing else of Logging (tools, tests): the level is
 * `level` unless SLUICE_LOG_LEVEL says otherwise; `name` becomes the node field.
 */
export function createLogger(level: LogLevel, name: string): Logger {
  return new Logging({ level: resolveLogLevel(level), node: name }).root;
}
