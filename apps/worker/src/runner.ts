/**
 * The worker process for one worker name: connects to Redis, waits for (or takes) the lease,
 * runs a Session while it holds it, goes back to standby if it loses it, and shuts down cleanly.
 */
import type { Redis } from 'ioredis';
import type { Tracer } from '@changeq/observability';
import { UserError, sleep, type Logger, type WorkerSettings } from '@changeq/shared';
import {
  DEFAULT_PREFIX,
  Lease,
  checkRedisDatabase,
  createRedis,
  describeRedisFailure,
  redisStartupError,
  workerKeys,
  type LeaseHolder,
} from '@changeq/store';
import type { Dispatch } from './handlers/load.js';
import { workerEvents, type WorkerHooks } from './hooks.js';
import { Session } from './session.js';
import { redisFailed } from './session/context.js';

export interface WorkerOptions {
  worker: string;
  redisUrl: string;
  prefix?: string;
  settings: WorkerSettings;
  dispatch: Dispatch;
  log: Logger;
  /** Jobs held at once (fetched ahead); default `defaultPrefetch(concurrency)`. */
  prefetch?: number;
  /** Lease time to live (ms); a standby takes over at most this long after a crash. */
  leaseTtlMs?: number;
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  commandPollMs?: number;
  /** Give up starting when Redis cannot be reached for this long. */
  connectTimeoutMs?: number;
  /** The scheduler's hooks and the worker's own (failures, reclaims, lost data): metrics. */
  hooks?: WorkerHooks[];
  random?: () => number;
  /** With OTEL_* set (startTracing): spans for the wait in the queue and every handler call. */
  tracer?: Tracer;
}

export type WorkerState = 'connecting' | 'standby' | 'active' | 'stopping' | 'stopped';

export interface RunningWorker {
  readonly state: WorkerState;
  /** Whether the worker's Redis connection is up (for /readyz). */
  readonly redisReady: boolean;
  /** Whether this process holds the lease and may act on jobs now (for /readyz). */
  readonly leaseValid: boolean;
  /** Who holds the lease, as stored in Redis (for /readyz on a standby). */
  leaseHolder(): Promise<LeaseHolder | undefined>;
  /** Graceful stop: handlers get up to `graceMs` to finish; then the lease is released. */
  stop(graceMs: number): Promise<void>;
  /** Resolves when the worker has stopped. */
  readonly done: Promise<void>;
  /**
   * Why the worker is stuck, if it is: a step (starting or ending a term, or stopping) that has
   * run past its deadline and will not end by itself. Undefined while it makes progress.
   */
  stuck(): string | undefined;
}

/** How long ending a term may take beyond its grace period before the process counts as stuck. */
const STEP_SLACK_MS = 30_000;

/**
 * Jobs held at once: enough that documents waiting for a predecessor or a retry do not starve
 * the others (4 × concurrency, at least concurrency + 16), and at least 128 so that fetching in
 * batches keeps up with fast handlers (measured: see bench/).
 */
export function defaultPrefetch(concurrency: number): number {
  return Math.max(4 * concurrency, concurrency + 16, 128);
}

/** Logs once per change between connected and not (the connection retries with backoff). */
function logConnectionChanges(redis: Redis, log: Logger): void {
  const name = redis.options.connectionName;
  let up: boolean | undefined;
  redis.on('ready', () => {
    if (up === false) log.info(`Redis connection restored (${name})`);
    up = true;
  });
  redis.on('error', (error: Error) => {
    if (up === true) {
      log.warn(
        { err: { message: error.message } },
        `Redis connection lost (${name}); retrying with backoff`,
      );
    }
    // Before the first connection there is nothing to restore (a refused SELECT says so too).
    if (up !== undefined) up = false;
  });
}

/**
 * Connects, or throws a UserError naming the server once `timeoutMs` has passed; at once for a
 * setting to correct (a wrong password, a missing permission, a database the server lacks).
 */
export async function connectRedis(redis: Redis, url: string, timeoutMs: number): Promise<void> {
  let lastError: unknown;
  const deadline = Date.now() + timeoutMs;
  const onError = (error: unknown) => (lastError = error);
  redis.on('error', onError);
  const connected = redis.connect().then(
    () => true,
    () => false,
  );
  const fail = async (error: unknown) => {
    redis.off('error', onError);
    const stop = await redisStartupError(redis, url, error);
    redis.disconnect();
    return stop;
  };
  while (Date.now() < deadline) {
    if (lastError !== undefined && describeRedisFailure(lastError, url).permanent) {
      throw await fail(lastError);
    }
    if (redis.status === 'ready') {
      try {
        await redis.ping();
        redis.off('error', onError);
        try {
          await checkRedisDatabase(redis, url);
        } catch (error) {
          redis.disconnect();
          throw error;
        }
        return;
      } catch (error) {
        if (error instanceof UserError) throw error;
        lastError = error;
      }
    }
    await Promise.race([connected, sleep(50)]);
  }
  throw await fail(lastError ?? new Error('no answer'));
}

/** The one line that says Redis lost a worker's data, what went with it, and the way on. */
function dataLostMessage(worker: string, heldFence: number, counter: number, jobsHeld: number) {
  const rest = 'the jobs waiting in its queue, its dead letters and blocked documents';
  const gone =
    jobsHeld > 0
      ? `the ${jobsHeld} job(s) this process held are gone, and so may be ${rest}`
      : `${rest} may be gone`;
  return (
    `Redis lost the data of worker "${worker}": its lease's fencing counter went back from ${heldFence} to ${counter} ` +
    `(Redis restarted without persistence, restored an older copy, or was flushed); ${gone}. ` +
    'Fix: run Redis with persistence (appendonly yes) or replicas, and re-enqueue what was lost with `changeq resync` (docs/operations.md, "Redis lost its data")'
  );
}

export async function startWorker(options: WorkerOptions): Promise<RunningWorker> {
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  const log = options.log.child({ worker: options.worker });
  const leaseTtlMs = options.leaseTtlMs ?? 10_000;
  const hooks = options.hooks ?? [];
  const events = workerEvents(hooks, (error) => log.warn({ err: error }, 'a hook threw; ignored'));
  // The connection first: the kind of Redis (a cluster or not) decides how keys are named.
  const redis = createRedis(options.redisUrl, { role: 'worker', worker: options.worker });
  const keys = workerKeys(prefix, options.worker);
  logConnectionChanges(redis, log);
  await connectRedis(redis, options.redisUrl, options.connectTimeoutMs ?? 10_000);

  let state: WorkerState = 'connecting';
  let stopping = false;
  /** The step under way that must end by a deadline (see RunningWorker#stuck). */
  let step: { what: string; deadline: number } | undefined;
  const during = async <T>(what: string, limitMs: number, run: () => Promise<T>): Promise<T> => {
    step = { what, deadline: Date.now() + limitMs };
    try {
      return await run();
    } finally {
      step = undefined;
    }
  };
  let graceMs = 0;
  let wake: (() => void) | undefined;
  let leaseLost: ((reason: string) => void) | undefined;
  /** The term under way, while this process holds the lease. */
  let session: Session | undefined;

  const lease = new Lease({
    redis,
    key: keys.lease,
    fenceKey: keys.fence,
    labels: { worker: options.worker },
    ttlMs: leaseTtlMs,
    onLost: (reason) => leaseLost?.(reason),
    onRenewError: (error) =>
      redisFailed({ log, events }, 'lease', error, 'lease renewal failed; retrying'),
    onDeadHolder: (dead) =>
      log.info(
        { pid: dead.pid, fence: dead.fence },
        'lease taken over at once: its holder was a process of this host that is gone',
      ),
    onDataLost: ({ heldFence, counter }) => {
      const jobsHeld = session?.jobsHeld ?? 0;
      log.error(
        { heldFence, counter, jobsHeld },
        dataLostMessage(options.worker, heldFence, counter, jobsHeld),
      );
      events.dataLost({ heldFence, counter, jobsHeld });
    },
  });

  const runSession = async (): Promise<void> => {
    const blocking = createRedis(options.redisUrl, {
      role: 'worker-marker',
      worker: options.worker,
    });
    blocking.on('error', () => undefined);
    const current = new Session({
      worker: options.worker,
      prefix,
      settings: options.settings,
      prefetch: options.prefetch ?? defaultPrefetch(options.settings.concurrency),
      lockDurationMs: options.lockDurationMs ?? 30_000,
      stalledIntervalMs: options.stalledIntervalMs ?? 30_000,
      commandPollMs: options.commandPollMs ?? 500,
      redis,
      blocking,
      lease,
      dispatch: options.dispatch,
      log,
      hooks,
      events,
      ...(options.random ? { random: options.random } : {}),
      ...(options.tracer ? { tracer: options.tracer } : {}),
    });
    session = current;
    const lost = new Promise<string>((resolve) => (leaseLost = resolve));
    try {
      await current.start();
    } catch (error) {
      log.error({ err: error }, 'could not start working; giving the lease back');
      await during('giving up a failed start', STEP_SLACK_MS, () => current.halt('start failed'));
      blocking.disconnect();
      await lease.release().catch(() => undefined);
      session = undefined;
      await sleep(1_000);
      return;
    }
    log.info(
      { fence: lease.fence, concurrency: options.settings.concurrency },
      'active: this process holds the lease and runs the jobs',
    );
    state = 'active';
    const stopRequested = new Promise<void>((resolve) => (wake = resolve));
    if (stopping) wake?.(); // stop() was called while the session was starting
    const reason = await Promise.race([lost, stopRequested.then(() => undefined)]);
    if (reason !== undefined) {
      // Not active from this moment on, whatever halting takes: metrics and status say so.
      state = 'standby';
      log.warn({ reason }, 'lease lost: stopped taking jobs; back to standby');
      await during('ending a term after losing the lease', STEP_SLACK_MS, () =>
        current.halt(reason),
      );
      lease.abandon();
    } else {
      const { drained } = await during('stopping', graceMs + STEP_SLACK_MS, () =>
        current.stop(graceMs),
      );
      if (!drained) log.warn('handlers still running at the shutdown timeout were aborted');
      await lease.release().catch(() => undefined);
    }
    blocking.disconnect();
    leaseLost = undefined;
    session = undefined;
  };

  const loop = async (): Promise<void> => {
    let standbyLogged = false;
    let errorLogged = false;
    while (!stopping) {
      let acquired = false;
      try {
        acquired = await lease.tryAcquire();
        errorLogged = false;
      } catch (error) {
        redisFailed({ log, events }, 'lease', error);
        if (!errorLogged) log.warn({ err: error }, 'could not reach Redis for the lease; retrying');
        errorLogged = true;
      }
      if (stopping) {
        if (acquired) await lease.release().catch(() => undefined);
        break;
      }
      if (acquired) {
        standbyLogged = false;
        await runSession();
        continue;
      }
      if (!standbyLogged && !errorLogged) {
        const holder = await lease.currentHolder().catch(() => undefined);
        log.info(
          { holder },
          `standby: worker "${options.worker}" is active in another process${holder ? ` (pid ${holder.pid} on ${holder.host})` : ''}; taking over when its lease ends`,
        );
        standbyLogged = true;
      }
      state = 'standby';
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, Math.min(1_000, Math.max(50, leaseTtlMs / 4)));
      });
    }
  };

  const done = loop()
    .catch((error: unknown) => log.error({ err: error }, 'worker loop failed'))
    .finally(async () => {
      state = 'stopped';
      await redis.quit().catch(() => redis.disconnect());
    });

  return {
    get state() {
      // The lease lapses on this process's clock before the lost-lease callback has run.
      return state === 'active' && !lease.isValid() ? 'standby' : state;
    },
    get redisReady() {
      return redis.status === 'ready';
    },
    get leaseValid() {
      return state === 'active' && lease.isValid();
    },
    leaseHolder: () => lease.currentHolder(),
    stuck() {
      const now = Date.now();
      if (step === undefined || now <= step.deadline) return undefined;
      return `${step.what} has not finished ${Math.round((now - step.deadline) / 1000)} s after its deadline`;
    },
    async stop(ms: number) {
      if (!stopping) {
        stopping = true;
        graceMs = ms;
        state = 'stopping';
        wake?.();
      }
      await done;
    },
    done,
  };
}
