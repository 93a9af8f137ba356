/**
 * The worker's metrics: a `WorkerHooks` implementation (the scheduler's hooks and the worker's
 * own: Redis failures, reclaims, lost data; structurally typed: this package does not depend on
 * @changeq/worker, which depends on it) plus a wrapper for the handler dispatch that learns each
 * job's namespace and operation, which the hooks do not carry.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { SlotMap } from '@changeq/shared';
import { namespaceLabel, type EventLike } from './ingest-metrics.js';

interface HookJobLike {
  jobId: string;
}

type Outcome = 'ok' | 'failed' | 'aborted';

/** The subset of `WorkerHooks` (apps/worker/src/hooks.ts) these metrics use. */
export interface WorkerMetricHooks {
  handlerFinished(job: HookJobLike & { durationMs: number; outcome: Outcome }): void;
  retryScheduled(job: HookJobLike): void;
  deadLettered(job: HookJobLike): void;
  jobDone(job: HookJobLike & { result: string }): void;
  backlog(sizes: { held: number; running: number; backingOff: number }): void;
  redisFailed(failure: { operation: string; error: string }): void;
  reclaimed(reclaim: { result: string }): void;
  dataLost(loss: { heldFence: number; counter: number; jobsHeld: number }): void;
  held(report: { waiting: number; releasedMs: readonly number[] }): void;
  ordered(waitedMs: readonly number[]): void;
}

export const WORKER_STATES = ['connecting', 'standby', 'active', 'stopping', 'stopped'] as const;

/** Seconds; handler calls range from sub-millisecond to the 60 s default timeout. */
export const HANDLER_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
];

/** Seconds; a job waits for its place in fetch order from nothing to a few Redis round trips. */
export const ORDER_BUCKETS = [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5];

export interface WorkerMetricsOptions {
  registry: Registry;
  worker: string;
  /** The worker's state (RunningWorker#state), read when scraped; undefined before it starts. */
  state: () => string | undefined;
  /** More gauges read when scraped (e.g. blocked documents), all labelled with the worker. */
  extra?: () => Promise<{ blockedDocuments: number; pendingCommands: number } | null>;
}

export interface WorkerMetrics {
  hooks: WorkerMetricHooks;
  /**
   * Wraps the handler dispatch so that the hooks can label a job with its event's namespace and
   * operation (the dispatch is called between `handlerStarted` and `handlerFinished`).
   */
  wrapDispatch<E extends EventLike, C extends { jobId: string }, R>(
    dispatch: (event: E, ctx: C) => R,
  ): (event: E, ctx: C) => R;
}

const MAX_TRACKED = 100_000;

/**
 * The hooks name a job by the scheduler's task id: the BullMQ job id behind `e:` (an event) or
 * `r:` (a dead-letter re-run). BullMQ job ids of changeq are hex digests, without a colon.
 */
export function jobIdOf(taskId: string): string {
  const colon = taskId.indexOf(':');
  return colon < 0 ? taskId : taskId.slice(colon + 1);
}
const UNKNOWN = { namespace: 'unknown', operation: 'unknown' };

export function createWorkerMetrics(options: WorkerMetricsOptions): WorkerMetrics {
  const registers = [options.registry];
  const worker = options.worker;
  /** jobId -> labels, from the dispatch; dropped when the job leaves the scheduler. */
  const labels = new SlotMap<string, { namespace: string; operation: string }>();
  // Labels built field by field: an object spread on this per-job path made V8 promote every
  // job's objects (see apps/worker/test/gc-retention.test.ts).
  const labelsOf = (taskId: string) => {
    const { namespace, operation } = labels.get(jobIdOf(taskId)) ?? UNKNOWN;
    return { worker, namespace, operation };
  };

  const duration = new Histogram({
    name: 'changeq_worker_handler_duration_seconds',
    help: 'Handler calls: how long each took, by namespace, operation and outcome (ok, failed, aborted). The count is the number of calls.',
    labelNames: ['worker', 'namespace', 'operation', 'outcome'] as const,
    buckets: HANDLER_BUCKETS,
    registers,
  });
  const failures = new Counter({
    name: 'changeq_worker_handler_failures_total',
    help: 'Handler calls that failed (threw, rejected or timed out).',
    labelNames: ['worker', 'namespace', 'operation'] as const,
    registers,
  });
  const retries = new Counter({
    name: 'changeq_worker_retries_total',
    help: 'Failed attempts that will be retried after a backoff.',
    labelNames: ['worker', 'namespace', 'operation'] as const,
    registers,
  });
  const deadLetters = new Counter({
    name: 'changeq_worker_dead_letters_total',
    help: 'Events whose last attempt failed and that went to the dead-letter queue <name>.dead.',
    labelNames: ['worker', 'namespace', 'operation'] as const,
    registers,
  });
  const finished = new Counter({
    name: 'changeq_worker_jobs_finished_total',
    help: 'Jobs that left the worker, by result: completed, dead-lettered, parked (behind a dead letter of their document) or dropped.',
    labelNames: ['worker', 'result'] as const,
    registers,
  });
  // The scheduler reports its sizes on every change, many times per job: they are kept as plain
  // numbers and read when scraped, not set into prom-client (which builds objects per set).
  const sizes = { held: 0, running: 0, backingOff: 0 };
  const sizeGauge = (name: string, help: string, size: keyof typeof sizes) =>
    new Gauge({
      name,
      help,
      labelNames: ['worker'] as const,
      registers,
      collect() {
        this.set({ worker }, sizes[size]);
      },
    });
  sizeGauge(
    'changeq_worker_jobs_held',
    'Jobs the worker holds (fetched, running, waiting for their document or a retry).',
    'held',
  );
  sizeGauge(
    'changeq_worker_handlers_running',
    'Handler calls running now (at most concurrency).',
    'running',
  );
  sizeGauge(
    'changeq_worker_jobs_backing_off',
    'Jobs waiting for a retry after a failed attempt.',
    'backingOff',
  );
  const redisFailures = new Counter({
    name: 'changeq_worker_redis_failures_total',
    help: 'Redis calls of the worker that failed and are tried again, by operation (fetch, lock-renewal, lease, commands, outcome) and kind of error (connection; reply: Redis refused it, e.g. OOM; bullmq: a BullMQ script refused it; other).',
    labelNames: ['worker', 'operation', 'error'] as const,
    registers,
  });
  const reclaims = new Counter({
    name: 'changeq_worker_reclaims_total',
    help: 'Held jobs whose lock had lapsed, by what was found: active (locked again), moved-back (BullMQ had put it back in the queue: taken back), gone (it vanished from the queue), foreign (another process holds it: this one lost the lease).',
    labelNames: ['worker', 'result'] as const,
    registers,
  });
  const dataLost = new Counter({
    name: 'changeq_worker_redis_data_lost_total',
    help: "Times this process found that Redis lost the worker's data: the lease's fencing counter went back below a fence it held (Redis restarted without persistence, restored an older copy, or was flushed).",
    labelNames: ['worker'] as const,
    registers,
  });
  dataLost.inc({ worker }, 0);
  const heldForHandoff = new Gauge({
    name: 'changeq_worker_held_tasks',
    help: "Jobs of documents that moved to this worker at a ring change, waiting for their old owner's handoff (every job queued there before the change finished).",
    labelNames: ['worker'] as const,
    registers,
  });
  heldForHandoff.set({ worker }, 0);
  const holdDuration = new Histogram({
    name: 'changeq_worker_hold_seconds',
    help: "How long a moved document's job waited for its old owner's handoff at a ring change.",
    labelNames: ['worker'] as const,
    buckets: HANDLER_BUCKETS,
    registers,
  });
  const orderWait = new Histogram({
    name: 'changeq_worker_fetch_order_wait_seconds',
    help: 'How long a job received from Redis waited for its place in fetch order before the scheduler got it (for the jobs moved to active before it to be handed over, or, after a lost reply or on a Redis Cluster, a read of the active list).',
    labelNames: ['worker'] as const,
    buckets: ORDER_BUCKETS,
    registers,
  });
  const orderWaitOfWorker = orderWait.labels({ worker });

  new Gauge({
    name: 'changeq_worker_lease_held',
    help: "1 while this process holds the worker name's lease and runs its jobs, else 0 (standby, connecting, stopping).",
    labelNames: ['worker'] as const,
    registers,
    collect() {
      this.set({ worker }, options.state() === 'active' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'changeq_worker_state',
    help: 'The state of the worker process: 1 for the current state, 0 for the others.',
    labelNames: ['worker', 'state'] as const,
    registers,
    collect() {
      const current = options.state() ?? 'connecting';
      this.reset();
      for (const state of new Set<string>([...WORKER_STATES, current])) {
        this.set({ worker, state }, state === current ? 1 : 0);
      }
    },
  });
  if (options.extra) {
    const extra = options.extra;
    let reading: ReturnType<typeof extra> | null = null;
    const read = () => {
      reading ??= extra().finally(() => (reading = null));
      return reading;
    };
    new Gauge({
      name: 'changeq_worker_blocked_documents',
      help: 'Documents blocked by a dead letter (dead_letter = "block"): their later events are parked.',
      labelNames: ['worker'] as const,
      registers,
      async collect() {
        this.reset();
        const values = await read().catch(() => null);
        if (values) this.set({ worker }, values.blockedDocuments);
      },
    });
    new Gauge({
      name: 'changeq_worker_pending_commands',
      help: 'Operator commands (dead-letter retry/discard) queued that the active process has not carried out yet.',
      labelNames: ['worker'] as const,
      registers,
      async collect() {
        this.reset();
        const values = await read().catch(() => null);
        if (values) this.set({ worker }, values.pendingCommands);
      },
    });
  }

  return {
    hooks: {
      handlerFinished(job) {
        const jobLabels = labelsOf(job.jobId);
        const { namespace, operation } = jobLabels;
        duration.observe(
          { worker, namespace, operation, outcome: job.outcome },
          job.durationMs / 1000,
        );
        if (job.outcome === 'failed') failures.inc(jobLabels);
      },
      retryScheduled(job) {
        retries.inc(labelsOf(job.jobId));
      },
      deadLettered(job) {
        deadLetters.inc(labelsOf(job.jobId));
      },
      jobDone(job) {
        finished.inc({ worker, result: job.result });
        labels.delete(jobIdOf(job.jobId));
      },
      backlog(now) {
        sizes.held = now.held;
        sizes.running = now.running;
        sizes.backingOff = now.backingOff;
      },
      redisFailed(failure) {
        redisFailures.inc({ worker, operation: failure.operation, error: failure.error });
      },
      reclaimed(reclaim) {
        reclaims.inc({ worker, result: reclaim.result });
      },
      dataLost() {
        dataLost.inc({ worker });
      },
      held(report) {
        heldForHandoff.set({ worker }, report.waiting);
        for (const ms of report.releasedMs) holdDuration.observe({ worker }, ms / 1000);
      },
      ordered(waitedMs) {
        for (const ms of waitedMs) orderWaitOfWorker.observe(ms / 1000);
      },
    },
    wrapDispatch(dispatch) {
      return (event, ctx) => {
        if (!labels.has(ctx.jobId)) {
          // Jobs abandoned when the lease is lost never report jobDone: keep the map bounded.
          if (labels.size >= MAX_TRACKED) labels.delete(labels.keys().next().value!);
          labels.set(ctx.jobId, {
            namespace: namespaceLabel(event),
            operation: String(event.operationType),
          });
        }
        return dispatch(event, ctx);
      };
    },
  };
}
