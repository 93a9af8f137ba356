/**
 * Settings of the CLI: the same environment variables as the ingest and the workers, each of
 * which a flag can override (`--redis-url` over REDIS_URL, ...), validated like the apps do.
 */
import { resolve } from 'node:path';
import {
  UserError,
  envReader,
  loadWorkersConfig,
  parseQueuePrefix,
  type WorkersConfig,
} from '@changeq/shared';

/** Connection flags, as commander hands them over (every value a string). */
export interface ConnectionFlags {
  redisUrl?: string;
  mongodbUri?: string;
  workersFile?: string;
  prefix?: string;
  ingestId?: string;
  watch?: string;
  connectTimeoutMs?: string;
}

/** The flag of each environment variable, for messages. */
const FLAG_OF: Record<string, string> = {
  REDIS_URL: '--redis-url',
  MONGODB_URI: '--mongodb-uri',
  WORKERS_FILE: '--workers-file',
  QUEUE_PREFIX: '--prefix',
  INGEST_ID: '--ingest-id',
  WATCH: '--watch',
};

/** The environment with the flags applied (what the ingest would see with those settings). */
export function effectiveEnv(flags: ConnectionFlags, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const merged: NodeJS.ProcessEnv = { ...env };
  const set = (name: string, value: string | undefined) => {
    if (value !== undefined) merged[name] = value;
  };
  set('REDIS_URL', flags.redisUrl);
  set('MONGODB_URI', flags.mongodbUri);
  set('WORKERS_FILE', flags.workersFile);
  set('QUEUE_PREFIX', flags.prefix);
  set('INGEST_ID', flags.ingestId);
  set('WATCH', flags.watch);
  return merged;
}

export class Settings {
  readonly env: NodeJS.ProcessEnv;
  private readonly read: ReturnType<typeof envReader>;
  private workersCache: WorkersConfig | undefined;

  constructor(
    readonly flags: ConnectionFlags,
    env: NodeJS.ProcessEnv,
  ) {
    this.env = effectiveEnv(flags, env);
    this.read = envReader(this.env);
  }

  private required(name: string, example: string): void {
    if (this.read.optionalString(name) === undefined) {
      throw new UserError(
        `no ${name === 'REDIS_URL' ? 'Redis' : 'MongoDB'} given`,
        `set ${name} or pass ${FLAG_OF[name]}, e.g. ${example} (npm run stack -- up prints one)`,
      );
    }
  }

  get redisUrl(): string {
    this.required('REDIS_URL', 'redis://127.0.0.1:6379');
    return this.read.redisUrl();
  }

  get mongodbUri(): string {
    this.required('MONGODB_URI', "'mongodb://127.0.0.1:27017/?replicaSet=rs0'");
    return this.read.mongoUri();
  }

  /** Both servers' settings, validated (UserError naming the flag and variable when missing). */
  servers(): { redisUrl: string; mongodbUri: string } {
    return { redisUrl: this.redisUrl, mongodbUri: this.mongodbUri };
  }

  get workersFile(): string {
    return this.read.string('WORKERS_FILE', { default: './workers.toml' });
  }

  get workers(): WorkersConfig {
    this.workersCache ??= loadWorkersConfig(resolve(this.workersFile));
    return this.workersCache;
  }

  /** QUEUE_PREFIX or --prefix, by the rule every process applies. */
  get prefix(): string {
    return parseQueuePrefix(
      this.env.QUEUE_PREFIX,
      this.flags.prefix === undefined ? 'QUEUE_PREFIX' : '--prefix',
    );
  }

  get ingestId(): string {
    const id = this.read.string('INGEST_ID', { default: 'default' });
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) {
      throw new UserError(
        `INGEST_ID="${id}" may only hold letters, digits, - and _`,
        'pass --ingest-id (or set INGEST_ID) to the id the ingest uses, e.g. "default"',
      );
    }
    return id;
  }

  /** How long a server gets to answer when connecting (default 3000 ms). */
  get connectTimeoutMs(): number {
    const raw = this.flags.connectTimeoutMs;
    if (raw === undefined) return 3000;
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || value < 100 || value > 600_000) {
      throw new UserError(
        `--connect-timeout-ms must be a whole number from 100 to 600000, got "${raw}"`,
        'pass e.g. --connect-timeout-ms 3000',
      );
    }
    return value;
  }

  /** A worker name from workers.toml; a wrong one lists the valid names. */
  worker(name: string): string {
    const workers = this.workers;
    if (workers.get(name) === undefined) {
      throw new UserError(
        `worker "${name}" is not in ${this.workersFile} (its names: ${workers.names.join(', ')})`,
        `pass --worker with one of: ${workers.names.join(', ')}`,
      );
    }
    return name;
  }
}
