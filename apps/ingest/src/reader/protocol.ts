/**
 * The messages between the ingest's main thread and its stream reader thread. Only plain data
 * crosses a thread boundary (the structured-clone algorithm drops classes), so BSON values that
 * matter travel as Extended JSON or as numbers, and errors travel already classified.
 */
import type { Document, Timestamp } from 'mongodb';
import { BSON, type ResumeToken, type RingEpoch } from '@changeq/shared';
import type { PlannedJob } from '@changeq/store';
import type {
  MongoFailure,
  SnapshotBatch,
  SnapshotBatchRequest,
  SnapshotStart,
  StartOptions,
} from '@changeq/source/stream';
import type { IngestConfig } from '@changeq/source';
import type { EventTally } from '../ports.js';

const { EJSON } = BSON;

/** What the reader thread is started with. */
export interface ReaderInit {
  mongodbUri: string;
  appName: string;
  serverSelectionTimeoutMS: number;
  /** Queue names carry hash tags (Redis Cluster): the thread names queues as the main thread. */
  hashTags: boolean;
  /** The ring the thread routes by until told another (see the `ring` operation). */
  ring: readonly RingEpoch[];
  source: Pick<
    IngestConfig,
    | 'watch'
    | 'fullDocument'
    | 'fullDocumentBeforeChange'
    | 'expandedEvents'
    | 'splitLargeEvents'
    | 'batchSize'
    | 'maxAwaitTimeMs'
  > & {
    /** IngestConfig.match as canonical Extended JSON (it may hold ObjectIds, dates…). */
    matchJson: string | null;
    /** IngestConfig.pipeline, likewise. */
    pipelineJson: string | null;
  };
  /** workers.toml's `[routing]`: namespace to rule, as written (parseRoutingRule reads it). */
  routing: Record<string, string>;
}

export type WireStart =
  { kind: 'after'; token: ResumeToken } | { kind: 'at'; t: number; i: number } | { kind: 'now' };

/** A Timestamp as numbers. */
export interface WireTime {
  t: number;
  i: number;
}

/** A batch as the reader thread sends it. */
export interface WireBatch {
  count: number;
  jobs: PlannedJob[];
  tally: EventTally[];
  last: { clusterTime: WireTime | null; wallTime: Date | null } | null;
  token: ResumeToken | null;
  invalidated: boolean;
}

/** A snapshot batch request: `_id` values as canonical Extended JSON, the time as numbers. */
export type WireSnapshotRequest = Omit<SnapshotBatchRequest, 'startAt' | 'after' | 'upTo'> & {
  startAt: WireTime;
  afterJson: string | null;
  upToJson: string | null;
};

export type WireSnapshotBatch = Omit<SnapshotBatch, 'last'> & { lastJson: string | null };

/** Each operation: what is sent, and what comes back. */
export interface ReaderOps {
  /** Reaches MongoDB (one attempt). */
  connect: { request: object; reply: null };
  open: { request: { start: WireStart }; reply: null };
  next: { request: { max: number }; reply: WireBatch };
  close: { request: object; reply: null };
  /** Routes by this ring history from now on (events by their position, see RingRouter). */
  ring: { request: { epochs: RingEpoch[] }; reply: null };
  shutdown: { request: object; reply: null };
  /** Answered at once, beside a read in progress: null, or why MongoDB did not answer. */
  ping: { request: object; reply: string | null };
  snapshotBegin: { request: object; reply: { startAt: WireTime; namespaces: string[] } };
  snapshotRead: { request: { batch: WireSnapshotRequest }; reply: WireSnapshotBatch };
}

export type ReaderOp = keyof ReaderOps;

export type ReaderRequest = {
  [K in ReaderOp]: { id: number; op: K } & ReaderOps[K]['request'];
}[ReaderOp];

/** An error as it crosses the thread boundary to the main thread (see ReadError). */
export interface WireError {
  name: string;
  message: string;
  stack?: string;
  code?: number | string;
  codeName?: string;
  /** What it means, decided where the driver's error classes were known (null: not MongoDB's). */
  failure: MongoFailure | null;
}

/**
 * The thread's first message: it has its MongoDB client, or the driver refused MONGODB_URI (the
 * main thread reads it without the driver's parse, not loading the driver; see loadConfig).
 */
export type ReaderStarted = { started: true } | { started: false; problem: string; fix: string };

export type ReaderReply =
  { id: number; ok: true; result: unknown } | { id: number; ok: false; error: WireError };

export function encodeTime(time: Timestamp): WireTime {
  return { t: time.getHighBitsUnsigned(), i: time.getLowBitsUnsigned() };
}

export function decodeTime(time: WireTime): Timestamp {
  return new BSON.Timestamp(time);
}

export function encodeStart(start: StartOptions): WireStart {
  if ('startAfter' in start && start.startAfter) return { kind: 'after', token: start.startAfter };
  if ('startAtOperationTime' in start && start.startAtOperationTime) {
    return { kind: 'at', ...encodeTime(start.startAtOperationTime as Timestamp) };
  }
  return { kind: 'now' };
}

export function decodeStart(start: WireStart): StartOptions {
  switch (start.kind) {
    case 'after':
      return { startAfter: start.token };
    case 'at':
      return { startAtOperationTime: decodeTime(start) };
    case 'now':
      return {};
  }
}

export function encodeMatch(match: Document | null): string | null {
  return match === null ? null : EJSON.stringify(match, { relaxed: false });
}

export function decodeMatch(json: string | null): Document | null {
  // relaxed, as @changeq/source's config.ts parses MATCH: the driver then sends the same BSON.
  return json === null ? null : (EJSON.parse(json, { relaxed: true }) as Document);
}

export function encodePipeline(stages: Document[] | null): string | null {
  return stages === null ? null : EJSON.stringify(stages, { relaxed: false });
}

export function decodePipeline(json: string | null): Document[] | null {
  return json === null ? null : (EJSON.parse(json, { relaxed: true }) as Document[]);
}

/** An `_id` (any BSON value) as canonical Extended JSON, and back with its type. */
function encodeId(holder: { id: unknown } | null): string | null {
  return holder === null ? null : EJSON.stringify({ id: holder.id }, { relaxed: false });
}

function decodeId(json: string | null): { id: unknown } | null {
  return json === null ? null : { id: (EJSON.parse(json, { relaxed: false }) as Document).id };
}

export function encodeSnapshotRequest(request: SnapshotBatchRequest): WireSnapshotRequest {
  const { startAt, after, upTo, ...rest } = request;
  return {
    ...rest,
    startAt: encodeTime(startAt),
    afterJson: encodeId(after),
    upToJson: encodeId(upTo),
  };
}

export function decodeSnapshotRequest(wire: WireSnapshotRequest): SnapshotBatchRequest {
  const { startAt, afterJson, upToJson, ...rest } = wire;
  return {
    ...rest,
    startAt: decodeTime(startAt),
    after: decodeId(afterJson),
    upTo: decodeId(upToJson),
  };
}

export function encodeSnapshotBatch(batch: SnapshotBatch): WireSnapshotBatch {
  const { last, ...rest } = batch;
  return { ...rest, lastJson: encodeId(last) };
}

export function decodeSnapshotBatch(wire: WireSnapshotBatch): SnapshotBatch {
  const { lastJson, ...rest } = wire;
  return { ...rest, last: decodeId(lastJson) };
}

export function encodeSnapshotStart(start: SnapshotStart): ReaderOps['snapshotBegin']['reply'] {
  return { startAt: encodeTime(start.startAt), namespaces: start.namespaces };
}

export function decodeSnapshotStart(wire: ReaderOps['snapshotBegin']['reply']): SnapshotStart {
  return { startAt: decodeTime(wire.startAt), namespaces: wire.namespaces };
}
