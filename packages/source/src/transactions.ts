/**
 * The events of one multi-document transaction, as the change stream shows them: every event a
 * transaction wrote carries its session's `lsid` and the `txnNumber`, and MongoDB delivers them
 * one after the other at the transaction's commit time (a commit is atomic, so once the stream
 * has shown one of its events the others are visible too). The ingest reads a transaction whole
 * into one batch (see ChangeSource.next), so each of its jobs can carry the transaction's event
 * count from the start.
 */
import type { Document } from 'mongodb';
import { BSON, type TransactionMark } from '@changeq/shared';

/**
 * The transaction an event belongs to, as canonical Extended JSON of its `lsid` and `txnNumber`
 * (exactly as the stream shows them); null outside a transaction. Retryable writes carry
 * neither field in their events.
 */
export function transactionIdOf(event: Document): string | null {
  const { lsid, txnNumber } = event as { lsid?: unknown; txnNumber?: unknown };
  if (lsid === undefined || lsid === null || txnNumber === undefined || txnNumber === null) {
    return null;
  }
  return BSON.EJSON.stringify({ lsid, txnNumber }, { relaxed: false });
}

/**
 * The clusterTime at the head of a resume token's `_data` (the key string's first value: type
 * byte 0x82 and the 8-byte timestamp), so a token and an event can be compared by time.
 */
export function clusterTimeOf(token: unknown): string | null {
  const data = (token as { _data?: unknown } | null | undefined)?._data;
  return typeof data === 'string' && data.startsWith('82') && data.length >= 18
    ? data.slice(0, 18)
    : null;
}

/**
 * Each event's place in its transaction (null for events outside one), in the batch's order. The
 * batch must hold each transaction whole. MongoDB shows a transaction's events one after another;
 * grouping by id rather than by run also holds if a sharded cluster's merge of two transactions
 * committed at one clusterTime interleaved them. The events of a transaction enqueued in parts
 * (at `partialTime`, see Batch.partialTime) get their id only: index and count null.
 */
export function markTransactions(
  events: readonly Document[],
  partialTime: string | null = null,
): (TransactionMark | null)[] {
  const ids = events.map(transactionIdOf);
  const counts = new Map<string, number>();
  for (const id of ids) if (id !== null) counts.set(id, (counts.get(id) ?? 0) + 1);
  const seen = new Map<string, number>();
  return ids.map((id, at) => {
    if (id === null) return null;
    if (partialTime !== null && clusterTimeOf(events[at]?._id) === partialTime) {
      return { id, index: null, count: null };
    }
    const index = seen.get(id) ?? 0;
    seen.set(id, index + 1);
    return { id, index, count: counts.get(id) ?? 0 };
  });
}
