/**
 * The parts an Ingest is made of, as it sees them. main.ts wires the real ones (the reader
 * thread, the store's Redis connection, PositionStore and Enqueuer); the tests hand it fakes.
 */
import type { Redis } from 'ioredis';
import type { Timestamp } from 'mongodb';
import { sleep, type ResumeToken, type RingEpoch } from '@changeq/shared';
import type { Enqueuer, PlannedJob, PositionStore, RingStore } from '@changeq/store';
import type { MongoFailure, SnapshotSource, StartOptions } from '@changeq/source/stream';

/** How many events of one namespace and operation a batch held (for the metrics). */
export interface EventTally {
  namespace: string;
  operation: string;
  count: number;
}

/** A batch of the change stream, read and planned: what the main thread commits. */
export interface ReadBatch {
  /** Number of change events in the batch (never counting an invalidate). */
  count: number;
  /** Their jobs, in oplog order (a namespace-wide event is one job per worker). */
  jobs: PlannedJob[];
  /** Events per namespace and operation. */
  tally: EventTally[];
  /** Cluster and wall time of the batch's last event. */
  last: { clusterTime: Timestamp | null; wallTime: Date | null } | null;
  /** The position after this batch (see Batch.token in @changeq/source's change-source.ts). */
  token: ResumeToken | null;
  /** The stream was invalidated (its collection or database dropped or renamed). */
  invalidated: boolean;
}

/**
 * Everything the ingest reads from MongoDB, over the reader's own connection: the change stream,
 * read and planned a batch at a time, and the snapshot copy's reads. Its calls reject with a
 * `ReadError` (already classified where the driver's error classes were known) or, when the
 * reader itself broke, any other error.
 */
export interface ChangeReader {
  /** Reaches MongoDB once (the ingest retries until its connect timeout). */
  connect(): Promise<void>;
  /** Opens the stream at `start`; the server is first asked by the next read. */
  open(start: StartOptions): Promise<void>;
  readonly isOpen: boolean;
  /** The events the server has ready (waiting up to maxAwaitTimeMS), at most `max`. */
  next(max: number): Promise<ReadBatch>;
  close(): Promise<void>;
  /**
   * Routes events by this ring history from now on (by each event's position, so a batch read
   * ahead of a ring change is routed right whichever side of the switch it lies).
   */
  setRing(epochs: readonly RingEpoch[]): Promise<void>;
  /** Whether MongoDB answers over the stream's connection: null, or why not. */
  ping(): Promise<string | null>;
  /** The snapshot copy's reads. */
  readonly snapshot: SnapshotSource;
  /** Closes the stream and its connection for good. */
  shutdown(): Promise<void>;
}

/** A read that failed, with what the failure means (null: not MongoDB's, a bug). */
export class ReadError extends Error {
  readonly failure: MongoFailure | null;
  readonly code: number | string | undefined;
  readonly codeName: string | undefined;

  constructor(
    message: string,
    failure: MongoFailure | null,
    details: { name?: string; stack?: string; code?: number | string; codeName?: string } = {},
  ) {
    super(message);
    this.name = details.name ?? 'ReadError';
    if (details.stack !== undefined) this.stack = details.stack;
    this.failure = failure;
    this.code = details.code;
    this.codeName = details.codeName;
  }
}

/** The ingest's Redis connection (from the store's factory): its state, a ping, its closes. */
export type RedisConnection = Pick<Redis, 'status' | 'connect' | 'ping' | 'disconnect'> & {
  on(event: 'close', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  off(event: 'error', listener: (error: Error) => void): unknown;
};

/**
 * The Redis connection dropped since the start was last read: Redis may have restarted without
 * its data, so the start is read (and checked) again before anything else is written.
 */
export class RedisInterruptedError extends Error {
  constructor() {
    super('the Redis connection was closed and made again');
    this.name = 'RedisInterruptedError';
  }
}

/** Where the ingest keeps its position (a PositionStore). */
export type PositionPort = Pick<
  PositionStore,
  | 'loadStart'
  | 'save'
  | 'clear'
  | 'markLost'
  | 'loadSnapshot'
  | 'saveSnapshot'
  | 'clearSnapshot'
  | 'keys'
>;

/** Where the ingest adds its jobs (an Enqueuer). */
export type EnqueuerPort = Pick<
  Enqueuer,
  | 'commit'
  | 'loadWatermarks'
  | 'clearWatermarks'
  | 'reset'
  | 'waitingCounts'
  | 'close'
  | 'ensureQueues'
  | 'unfinishedCount'
  | 'highestWatermark'
>;

/** Where the ring lives (a RingStore). */
export type RingPort = Pick<RingStore, 'load' | 'save' | 'markHandoff' | 'key'>;

/** Time, for the backoff, the backlog checks and the stored positions. */
export interface Clock {
  now(): number;
  /** Resolves true after `ms`, or false as soon as `signal` fires. */
  sleep(ms: number, signal?: AbortSignal): Promise<boolean>;
  /** For the backoff's jitter. */
  random(): number;
}

export const systemClock: Clock = { now: () => Date.now(), sleep, random: Math.random };

/** The crash points of the fault tests (see fault-points.ts). */
export type FaultPoint =
  | 'after-queue-commit'
  | 'before-token-save'
  | 'after-token-save'
  /** A ring change: after the handoff markers, before the new epoch is stored. */
  | 'ring-after-markers'
  /** A ring change: right after the new epoch is stored. */
  | 'ring-after-record';
