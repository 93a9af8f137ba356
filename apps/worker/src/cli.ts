import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { httpSettings, type HttpSettings } from '@changeq/observability';
import {
  DEFAULT_WORKER_SETTINGS,
  UserError,
  envReader,
  loadWorkersConfig,
  type WorkerSettings,
} from '@changeq/shared';
import { defaultPrefetch } from './runner.js';

export const USAGE = `Usage: changeq-worker --name <worker> [options]

Runs the job handlers of one worker name from workers.toml, in per-document order.

Options (environment variable in brackets):
  --name <worker>              worker name from workers.toml [WORKER_NAME] (required)
  --handlers <path>            handlers module [HANDLERS] (default: the example read-model handlers)
  --concurrency <n>            handler calls at once, overrides workers.toml
  --dead-letter <block|skip>   dead-letter policy, overrides workers.toml
  --prefetch <n>               jobs held at once [PREFETCH] (default max(4 x concurrency, concurrency + 16, 128))
  --shutdown-timeout-ms <ms>   SIGTERM/SIGINT: time handlers get to finish [SHUTDOWN_TIMEOUT_MS] (default 10000)
  --lease-ttl-ms <ms>          how long a dead process's lease blocks a standby [LEASE_TTL_MS] (default 10000)
  --http-port <port>           serve /metrics, /healthz and /readyz on this port [HTTP_PORT] (default 0: off)
  --http-host <address>        address of that server [HTTP_HOST] (default 127.0.0.1)
  --help                       show this text
Environment: REDIS_URL (required), WORKERS_FILE (default ./workers.toml), QUEUE_PREFIX (default changeq),
  LOG_LEVEL (default info), CONNECT_TIMEOUT_MS (default 10000), LOCK_DURATION_MS (default 30000),
  REDIS_TLS_CA, REDIS_TLS_CERT, REDIS_TLS_KEY (PEM files, for rediss://).`;

export interface CliConfig {
  help: boolean;
  worker: string;
  handlers: string;
  redisUrl: string;
  prefix: string;
  logLevel: string;
  settings: WorkerSettings;
  prefetch: number;
  shutdownTimeoutMs: number;
  leaseTtlMs: number;
  lockDurationMs: number;
  connectTimeoutMs: number;
  workersFile: string;
  /** /metrics, /healthz, /readyz; port 0 = no server. */
  http: HttpSettings;
  /**
   * The name is not in workers.toml: main.ts runs it only if the stored ring knew it (a removed
   * name draining its queue), with the default settings; otherwise this error stops it.
   */
  notInFile: UserError | null;
}

export const DEFAULT_HANDLERS = fileURLToPath(new URL('./examples/read-model.js', import.meta.url));

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

function intSetting(
  name: string,
  raw: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new UserError(
      `${name} must be a whole number from ${min} to ${max}, got "${raw}"`,
      `set ${name} to a number such as ${Math.min(Math.max(fallback, min), max)}`,
    );
  }
  return value;
}

export function parseCli(argv: string[], env: NodeJS.ProcessEnv): CliConfig {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        name: { type: 'string' },
        handlers: { type: 'string' },
        concurrency: { type: 'string' },
        'dead-letter': { type: 'string' },
        prefetch: { type: 'string' },
        'shutdown-timeout-ms': { type: 'string' },
        'lease-ttl-ms': { type: 'string' },
        'http-port': { type: 'string' },
        'http-host': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    const message = (error as Error).message.split('\n')[0] ?? 'bad arguments';
    throw new UserError(message.replace(/\.$/, ''), 'run with --help to see the flags');
  }
  const str = (flag: string, envName?: string): string | undefined => {
    const fromFlag = values[flag];
    if (typeof fromFlag === 'string') return fromFlag;
    const fromEnv = envName === undefined ? undefined : env[envName];
    return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv;
  };
  if (values.help === true) {
    return { help: true } as CliConfig;
  }

  const worker = str('name', 'WORKER_NAME');
  if (worker === undefined) {
    throw new UserError(
      'no worker name given',
      'pass --name <worker> (or set WORKER_NAME) to one of the names in workers.toml',
    );
  }
  const reader = envReader(env);
  const redisUrl = reader.redisUrl('REDIS_URL');
  const prefix = reader.queuePrefix();
  const logLevel = reader.oneOf('LOG_LEVEL', LOG_LEVELS, { default: 'info' });

  const workersFile = env.WORKERS_FILE || './workers.toml';
  const config = loadWorkersConfig(resolve(workersFile));
  const notInFile = config.get(worker)
    ? null
    : new UserError(
        `worker "${worker}" is not in ${workersFile} (its names: ${config.names.join(', ')}) nor in the ring stored in Redis`,
        `pass --name with one of: ${config.names.join(', ')}; or add "${worker}" to workers.toml`,
      );
  const spec = config.get(worker) ?? { name: worker, ...DEFAULT_WORKER_SETTINGS };
  const concurrency = intSetting('--concurrency', str('concurrency'), spec.concurrency, 1, 1000);
  const deadLetterRaw = str('dead-letter') ?? spec.deadLetter;
  if (deadLetterRaw !== 'block' && deadLetterRaw !== 'skip') {
    throw new UserError(
      `--dead-letter must be "block" or "skip", got "${deadLetterRaw}"`,
      'pass --dead-letter block or --dead-letter skip',
    );
  }
  const httpPortFlag = values['http-port'];
  const http = httpSettings(env, {
    port:
      typeof httpPortFlag === 'string'
        ? String(intSetting('--http-port', httpPortFlag, 0, 0, 65_535))
        : undefined,
    host: typeof values['http-host'] === 'string' ? values['http-host'] : undefined,
  });
  return {
    help: false,
    notInFile,
    http,
    worker,
    handlers: resolve(str('handlers', 'HANDLERS') ?? DEFAULT_HANDLERS),
    redisUrl,
    prefix,
    logLevel,
    workersFile,
    settings: {
      concurrency,
      attempts: spec.attempts,
      backoffMs: spec.backoffMs,
      maxBackoffMs: spec.maxBackoffMs,
      timeoutMs: spec.timeoutMs,
      deadLetter: deadLetterRaw,
    },
    prefetch: intSetting(
      '--prefetch',
      str('prefetch', 'PREFETCH'),
      defaultPrefetch(concurrency),
      concurrency,
      100_000,
    ),
    shutdownTimeoutMs: intSetting(
      '--shutdown-timeout-ms',
      str('shutdown-timeout-ms', 'SHUTDOWN_TIMEOUT_MS'),
      10_000,
      0,
      2_147_483_647,
    ),
    leaseTtlMs: intSetting(
      '--lease-ttl-ms',
      str('lease-ttl-ms', 'LEASE_TTL_MS'),
      10_000,
      300,
      600_000,
    ),
    lockDurationMs: intSetting('LOCK_DURATION_MS', env.LOCK_DURATION_MS, 30_000, 1_000, 3_600_000),
    connectTimeoutMs: intSetting(
      'CONNECT_TIMEOUT_MS',
      env.CONNECT_TIMEOUT_MS,
      10_000,
      100,
      600_000,
    ),
  };
}
