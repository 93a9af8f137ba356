/**
 * The ingest's metrics. Structural types only: this package does not depend on @changeq/ingest
 * (the ingest depends on it); apps/ingest/src/main.ts wires its events and status in.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

/** A BSON Timestamp (cluster time): seconds in its high 32 bits. */
export interface ClusterTimeLike {
  getHighBitsUnsigned(): number;
}

/** What the metrics read of `Ingest#status`. */
export interface IngestStatusLike {
  state: string;
  position: {
    clusterTime: ClusterTimeLike | null;
    wallTime: Date | null;
    savedAt: Date;
  } | null;
  lastEvent: { clusterTime: ClusterTimeLike | null; wallTime: Date | null } | null;
  /** When a read last found no change waiting: everything up to then is enqueued. */
  caughtUpAt?: Date | null;
  /** The ring the ingest routes by (null until read). */
  ring?: { epoch: number; names: readonly string[] } | null;
  /** Standby ingests: this process's role, the leader and the standbys (null: not in use). */
  leadership?: {
    role: string;
    fence: number | null;
    leader: { pid: number; host: string; fence: number | null } | null;
    standbys: readonly { pid: number; host: string }[];
  } | null;
}

/** A change event as far as the labels go. */
/** How many events of one namespace (`db.coll`, or `db` for database-wide events) and operation. */
export interface EventTally {
  namespace: string;
  operation: string;
  count: number;
}

export interface EventLike {
  operationType: string;
  ns?: { db?: string; coll?: string };
}

export const INGEST_STATES = [
  'starting',
  'standby',
  'snapshot',
  'streaming',
  'backpressure',
  'paused',
  'retrying',
  'stopping',
  'stopped',
] as const;

/**
 * States in which the ingest holds its change stream (or is copying), or an operator paused it
 * (a restart would not help: the pause lives in Redis): it is ready.
 */
export const INGEST_READY_STATES: readonly string[] = [
  'streaming',
  'backpressure',
  'snapshot',
  'paused',
];

/** `db.coll`, `db` for database-wide events, '' when the event has no namespace. */
export function namespaceLabel(event: EventLike): string {
  const db = event.ns?.db;
  if (!db) return '';
  return event.ns?.coll ? `${db}.${event.ns.coll}` : db;
}

function seconds(time: { clusterTime: ClusterTimeLike | null; wallTime: Date | null }) {
  if (time.clusterTime) return time.clusterTime.getHighBitsUnsigned();
  return time.wallTime ? time.wallTime.getTime() / 1000 : null;
}

export interface IngestMetricsOptions {
  registry: Registry;
  status: () => IngestStatusLike;
  ingestId: string;
  prefix: string;
  /** describeScope(config.watch), for the info metric. */
  watch: string;
  now?: () => number;
}

export interface IngestMetrics {
  /** Wire to `ingest.on('committed', ...)`. */
  committed(batch: { tally: readonly EventTally[]; added: number; skipped: number }): void;
  /** Wire to `ingest.on('backpressure', ...)`. */
  backpressure(paused: boolean): void;
  /** Wire to `ingest.on('state', ...)`. */
  state(state: string): void;
}

export function createIngestMetrics(options: IngestMetricsOptions): IngestMetrics {
  const registers = [options.registry];
  const now = options.now ?? Date.now;

  new Gauge({
    name: 'changeq_ingest_info',
    help: 'Always 1; the labels say which ingest this is.',
    labelNames: ['ingest_id', 'prefix', 'watch'] as const,
    registers,
  }).set({ ingest_id: options.ingestId, prefix: options.prefix, watch: options.watch }, 1);

  const events = new Counter({
    name: 'changeq_ingest_events_total',
    help: 'Change events read from the stream and committed to their queues, by namespace and operation (an event re-read after a restart counts again; see changeq_ingest_jobs_skipped_total).',
    labelNames: ['namespace', 'operation'] as const,
    registers,
  });
  const added = new Counter({
    name: 'changeq_ingest_jobs_added_total',
    help: 'Jobs added to the queues (a namespace-wide event is one job per worker).',
    registers,
  });
  const skipped = new Counter({
    name: 'changeq_ingest_jobs_skipped_total',
    help: 'Jobs not added because their queue already held them (re-read after a restart; below the watermark).',
    registers,
  });
  const batches = new Counter({
    name: 'changeq_ingest_batches_total',
    help: 'Batches with events committed to Redis.',
    registers,
  });
  const pauses = new Counter({
    name: 'changeq_ingest_backpressure_pauses_total',
    help: 'Times the ingest stopped reading because a queue held more than BACKLOG_LIMIT waiting jobs.',
    registers,
  });
  let pausedSince: number | null = null;
  const pausedSeconds = new Counter({
    name: 'changeq_ingest_backpressure_seconds_total',
    help: 'Seconds spent paused by backpressure.',
    registers,
    collect() {
      if (pausedSince !== null) {
        const at = now();
        this.inc((at - pausedSince) / 1000);
        pausedSince = at;
      }
    },
  });
  const transitions = new Counter({
    name: 'changeq_ingest_state_transitions_total',
    help: 'Times the ingest entered each state (e.g. retrying: a MongoDB or Redis failure).',
    labelNames: ['state'] as const,
    registers,
  });

  new Gauge({
    name: 'changeq_ring_epoch',
    help: 'The epoch of the ring the ingest routes new events by (it grows by one at each change of the worker names); NaN until the ring is read.',
    registers,
    collect() {
      this.set(options.status().ring?.epoch ?? Number.NaN);
    },
  });

  new Gauge({
    name: 'changeq_ingest_leader',
    help: 'Standby ingests: 1 while this process holds the ingest lease and streams, 0 while it waits as a standby (NaN when it runs without a lease).',
    registers,
    collect() {
      const leadership = options.status().leadership;
      this.set(leadership ? Number(leadership.role === 'leader') : Number.NaN);
    },
  });
  new Gauge({
    name: 'changeq_ingest_fence',
    help: 'The fencing number of the leader of this INGEST_ID, as last seen by this process (it grows by one at each takeover); NaN when none is known.',
    registers,
    collect() {
      this.set(options.status().leadership?.leader?.fence ?? Number.NaN);
    },
  });
  new Gauge({
    name: 'changeq_ingest_processes',
    help: 'The ingest processes of this INGEST_ID as last seen by this process, by role (leader, standby).',
    labelNames: ['role'] as const,
    registers,
    collect() {
      const leadership = options.status().leadership;
      this.reset();
      if (!leadership) return;
      this.set({ role: 'leader' }, leadership.leader ? 1 : 0);
      this.set({ role: 'standby' }, leadership.standbys.length);
    },
  });

  new Gauge({
    name: 'changeq_ingest_state',
    help: 'The state of the ingest: 1 for the current state, 0 for the others.',
    labelNames: ['state'] as const,
    registers,
    collect() {
      const current = options.status().state;
      this.reset();
      for (const state of new Set<string>([...INGEST_STATES, current])) {
        this.set({ state }, state === current ? 1 : 0);
      }
    },
  });

  new Gauge({
    name: 'changeq_ingest_lag_seconds',
    help: 'How far behind the oplog the ingest is: now minus the cluster time of the last event committed, or minus the last time a read found no change waiting, whichever is later. NaN until the first position is known.',
    registers,
    collect() {
      const status = options.status();
      const marks = [
        status.lastEvent ? seconds(status.lastEvent) : null,
        status.position ? seconds(status.position) : null,
        status.caughtUpAt ? status.caughtUpAt.getTime() / 1000 : null,
      ].filter((mark): mark is number => mark !== null);
      this.set(marks.length > 0 ? Math.max(0, now() / 1000 - Math.max(...marks)) : NaN);
    },
  });

  new Gauge({
    name: 'changeq_ingest_last_event_timestamp_seconds',
    help: 'Cluster time (Unix seconds) of the last event committed to a queue.',
    registers,
    collect() {
      const last = options.status().lastEvent;
      const at = last ? seconds(last) : null;
      this.set(at ?? NaN);
    },
  });

  new Gauge({
    name: 'changeq_ingest_token_age_seconds',
    help: 'Age of the stored resume token: now minus the cluster time it points at. Compare with the oplog window: past it, the stream cannot resume (ChangeStreamHistoryLost).',
    registers,
    collect() {
      const position = options.status().position;
      const at = position ? seconds(position) : null;
      this.set(at === null ? NaN : Math.max(0, now() / 1000 - at));
    },
  });

  new Gauge({
    name: 'changeq_ingest_token_saved_timestamp_seconds',
    help: 'When (Unix seconds) the resume token was last stored in Redis.',
    registers,
    collect() {
      const position = options.status().position;
      this.set(position ? position.savedAt.getTime() / 1000 : NaN);
    },
  });

  return {
    committed(batch) {
      batches.inc();
      for (const { namespace, operation, count } of batch.tally) {
        events.inc({ namespace, operation }, count);
      }
      added.inc(batch.added);
      skipped.inc(batch.skipped);
    },
    backpressure(paused) {
      if (paused) {
        pauses.inc();
        pausedSince ??= now();
      } else if (pausedSince !== null) {
        pausedSeconds.inc((now() - pausedSince) / 1000);
        pausedSince = null;
      }
    },
    state(state) {
      transitions.inc({ state });
    },
  };
}
