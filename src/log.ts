import { type Logger, type LoggerOptions, pino } from 'pino';

export type { Logger };

/**
 * Every path under which a secret can appear in a log line. Added to the day a secret is added to the
 * config schema (src/config/schema.ts); test/unit/log.test.ts proves each one is censored.
 */
export const REDACT_PATHS = [
  'password',
  'token',
  'apiToken',
  'apiKey',
  'secret',
  'privateKey',
  'authorization',
  '*.password',
  '*.token',
  '*.apiToken',
  '*.apiKey',
  '*.secret',
  '*.privateKey',
  '*.nextPrivateKey',
  '*.authorization',
  '*.*.password',
  '*.*.token',
  '*.*.apiToken',
  '*.*.apiKey',
  '*.*.secret',
  '*.*.privateKey',
  '*.*.nextPrivateKey',
  'headers.authorization',
  'headers["x-zephr-jwt"]',
  'req.headers.authorization',
  'req.headers["x-zephr-jwt"]',
  'config.source.password',
  'config.source.token',
  'config.targets.sunshine.apiToken',
  'config.targets.zephr.jwt.secret',
  'config.targets.zephr.jwt.privateKey',
  'config.targets.zephr.jwt.nextPrivateKey',
  'config.targets.prelude.apiKey',
  'dashboardToken',
  '*.dashboardToken',
  'config.ops.dashboardToken',
  'config.ops.apiToken',
  'webhookUrl',
  '*.webhookUrl',
  'config.alerts.webhookUrl',
];

export interface CreateLoggerOptions {
  level?: string;
  /** Where lines go; defaults to stderr so that stdout stays clean for `--json` output. */
  destination?: NodeJS.WritableStream | pino.DestinationStream;
  name?: string;
}

/** The one way to make a logger: JSON lines on stderr, secrets censored. */
export function createLogger(options: CreateLoggerOptions = {}): Logger {
  const opts: LoggerOptions = {
    level: options.level ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { pid: process.pid, ...(options.name ? { name: options.name } : {}) },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return pino(opts, (options.destination as pino.DestinationStream) ?? pino.destination(2));
}
