import type { Timestamp } from 'mongodb';
import type { Logger } from '@changeq/shared';
import type { Enqueuer, PositionStore, SnapshotProgress } from '@changeq/store';
import type { SnapshotSource } from './snapshot-reader.js';

/** What a copy needs: where it reads, where it commits and keeps its progress. */
export interface SnapshotCopy {
  /** The MongoDB side (a `SnapshotReader`, or the ingest's reader thread). */
  source: SnapshotSource;
  enqueuer: Pick<Enqueuer, 'commit' | 'loadWatermarks' | 'clearWatermarks'>;
  store: Pick<PositionStore, 'loadSnapshot' | 'saveSnapshot'>;
  /** Documents per batch (and per commit). */
  batchSize: number;
  log: Logger;
  signal: AbortSignal;
  onProgress?: (progress: {
    namespace: string;
    copied: number;
    index: number;
    total: number;
  }) => void;
}

/**
 * Copies every watched collection as `snapshot` events through the same routing as change
 * events, then hands back the cluster time taken before the copy began, so the stream picks up
 * every change made during and after the copy (a document changed mid-copy arrives twice: as
 * its snapshot and as its change, in that order, on the same worker). Resumable: progress is
 * saved per batch, and a batch interrupted mid-commit is re-read over exactly the same range.
 * Resolves null when stopped.
 */
export async function copySnapshot(copy: SnapshotCopy): Promise<Timestamp | null> {
  let state = await copy.store.loadSnapshot();
  if (state?.done) return state.startAt;
  if (!state) {
    const { startAt, namespaces } = await copy.source.begin();
    state = {
      v: 1,
      runId: `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`,
      startAt,
      namespaces,
      index: 0,
      last: null,
      pending: null,
      seq: 0,
      copied: 0,
      done: false,
    } satisfies SnapshotProgress;
    await copy.enqueuer.clearWatermarks('snapshot');
    await copy.store.saveSnapshot(state);
    copy.log.info(
      { namespaces: state.namespaces, startAt: state.startAt },
      'snapshot: copying the watched collections',
    );
  } else {
    copy.log.info(
      { namespace: state.namespaces[state.index], copied: state.copied },
      'snapshot: resuming an interrupted copy',
    );
  }
  await copy.enqueuer.loadWatermarks('snapshot');

  while (state.index < state.namespaces.length) {
    if (copy.signal.aborted) return null;
    const ns = state.namespaces[state.index]!;
    // A pending batch is read again over the same range; documents deleted since are simply
    // absent, and ones inserted since arrive through the change stream anyway.
    const pending: SnapshotProgress['pending'] = state.pending;
    const seq: number = pending ? pending.seq : state.seq;
    const batch = await copy.source.read({
      runId: state.runId,
      startAt: state.startAt,
      ns,
      seq,
      after: state.last,
      upTo: pending ? { id: pending.upper } : null,
      limit: copy.batchSize,
    });
    if (!pending) {
      if (batch.count === 0) {
        state = { ...state, index: state.index + 1, last: null };
        await copy.store.saveSnapshot(state);
        continue;
      }
      state = { ...state, pending: { seq, upper: batch.last!.id } };
      await copy.store.saveSnapshot(state);
    }
    await copy.enqueuer.commit(batch.jobs, 'snapshot');
    state = {
      ...state,
      last: { id: state.pending!.upper },
      pending: null,
      seq: seq + 1,
      copied: state.copied + batch.count,
    };
    await copy.store.saveSnapshot(state);
    copy.onProgress?.({
      namespace: ns,
      copied: state.copied,
      index: state.index,
      total: state.namespaces.length,
    });
  }
  state = { ...state, done: true };
  await copy.store.saveSnapshot(state);
  copy.log.info(
    { copied: state.copied },
    'snapshot: copy complete; streaming changes made since it began',
  );
  return state.startAt;
}
