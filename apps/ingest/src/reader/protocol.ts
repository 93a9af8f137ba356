/**
 * The messages between the ingest's main thread and its stream reader thread. Only plain data
 * crosses a thread boundary (the structured-clone algorithm drops classes), so BSON values that
 * matter travel as Extended JSON or as numbers, and errors travel already classified.
 */
import { BSON, Timestamp, type Document } from 'mongodb';
import type { ResumeToken } from '@changeq/shared';
import type { PlannedJob } from '@changeq/store';
import type { IngestConfig, StartOptions } from '@changeq/source';
import type { WireError } from '../failures.js';

/** What the reader thread is started with. */
export interface ReaderInit {
  mongodbUri: string;
  appName: string;
  serverSelectionTimeoutMS: number;
  workers: readonly string[];
  source: Pick<
    IngestConfig,
    'watch' | 'fullDocument' | 'fullDocumentBeforeChange' | 'batchSize' | 'maxAwaitTimeMs'
  > & {
    /** IngestConfig.match as canonical Extended JSON (it may hold ObjectIds, dates…). */
    matchJson: string | null;
  };
}

export type WireStart =
  { kind: 'after'; token: ResumeToken } | { kind: 'at'; t: number; i: number } | { kind: 'now' };

export type ReaderRequest =
  | { id: number; op: 'open'; start: WireStart }
  | { id: number; op: 'next'; max: number }
  | { id: number; op: 'close' }
  | { id: number; op: 'shutdown' };

/** How many events of one namespace and operation a batch held (for the metrics). */
export interface EventTally {
  namespace: string;
  operation: string;
  count: number;
}

/** A batch as the reader thread sends it. */
export interface WireBatch {
  count: number;
  jobs: PlannedJob[];
  tally: EventTally[];
  last: { clusterTime: { t: number; i: number } | null; wallTime: Date | null } | null;
  token: ResumeToken | null;
  invalidated: boolean;
}

export type ReaderReply =
  { id: number; ok: true; result: WireBatch | null } | { id: number; ok: false; error: WireError };

export function encodeStart(start: StartOptions): WireStart {
  if ('startAfter' in start && start.startAfter) return { kind: 'after', token: start.startAfter };
  if ('startAtOperationTime' in start && start.startAtOperationTime) {
    const time = start.startAtOperationTime as Timestamp;
    return { kind: 'at', t: time.getHighBitsUnsigned(), i: time.getLowBitsUnsigned() };
  }
  return { kind: 'now' };
}

export function decodeStart(start: WireStart): StartOptions {
  switch (start.kind) {
    case 'after':
      return { startAfter: start.token };
    case 'at':
      return { startAtOperationTime: new Timestamp({ t: start.t, i: start.i }) };
    case 'now':
      return {};
  }
}

export function encodeMatch(match: Document | null): string | null {
  return match === null ? null : BSON.EJSON.stringify(match, { relaxed: false });
}

export function decodeMatch(json: string | null): Document | null {
  // relaxed, as @changeq/source's config.ts parses MATCH: the driver then sends the same BSON.
  return json === null ? null : (BSON.EJSON.parse(json, { relaxed: true }) as Document);
}
