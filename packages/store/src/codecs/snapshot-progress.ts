/**
 * What an ingest's snapshot key holds (`ingestKeys().snapshot`): the progress of a copy of the
 * watched collections, saved after every batch so that an interrupted copy resumes where it
 * stopped. Extended JSON (canonical): `_id` values and the start time keep their BSON types.
 */
import type { Document, Timestamp } from 'mongodb';
import { BSON } from '@changeq/shared';

const { EJSON } = BSON;

export interface SnapshotProgress {
  v: 1;
  runId: string;
  /** Cluster time taken before the copy began: the stream continues from it. */
  startAt: Timestamp;
  namespaces: string[];
  /** Index into namespaces of the collection being copied. */
  index: number;
  /** The last `_id` committed in that collection, if any. */
  last: { id: unknown } | null;
  /** A batch whose jobs may be partly committed: re-read exactly its `_id` range. */
  pending: { seq: number; upper: unknown } | null;
  seq: number;
  copied: number;
  done: boolean;
}

export function encodeSnapshotProgress(progress: SnapshotProgress): string {
  return EJSON.stringify(progress, { relaxed: false });
}

/** The progress as the ingest wrote it (throws when the value is not Extended JSON). */
export function decodeSnapshotProgress(raw: string): SnapshotProgress {
  return EJSON.parse(raw, { relaxed: true }) as SnapshotProgress;
}

/** What an operator is told about a copy: every field checked, as it may come from anywhere. */
export interface SnapshotSummary {
  namespaces: string[];
  /** The collection being copied (null once the copy is done). */
  current: string | null;
  copied: number;
  done: boolean;
  startAt: Timestamp | null;
}

/** Reads a stored copy's progress for `changeq status` and `changeq resync`; null when unreadable. */
export function summarizeSnapshotProgress(raw: string): SnapshotSummary | null {
  let state: Document | null;
  try {
    state = EJSON.parse(raw, { relaxed: true }) as Document | null;
  } catch {
    return null;
  }
  if (state === null || state === undefined) return null;
  const namespaces = Array.isArray(state.namespaces) ? (state.namespaces as string[]) : [];
  const index = typeof state.index === 'number' ? state.index : 0;
  const done = state.done === true;
  return {
    namespaces,
    current: done ? null : (namespaces[index] ?? null),
    copied: typeof state.copied === 'number' ? state.copied : 0,
    done,
    startAt: state.startAt instanceof BSON.Timestamp ? state.startAt : null,
  };
}
