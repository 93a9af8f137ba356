/**
 * What the ring key holds (`ringKey(prefix)`): the worker names by epoch, each with the position
 * after which it routes (see RingRouter in @changeq/shared), as JSON:
 *
 *   {"v":1,"epochs":[{"epoch":1,"names":["a","b"],"from":"","at":"2026-…"}, …]}
 *
 * Only the last epochs are kept: a ring change switches at the stored resume token, so events
 * read again after a crash are never older than the epoch before the newest.
 */
import type { RingEpoch } from '@changeq/shared';

export const RING_VERSION = 1;
/** Epochs kept in the record (status shows their handoffs; routing needs the last two). */
export const RING_EPOCHS_KEPT = 5;

/** One epoch as stored: when it was made, for status. */
export interface StoredEpoch extends RingEpoch {
  at: string;
}

export function encodeRing(epochs: readonly StoredEpoch[]): string {
  return JSON.stringify({ v: RING_VERSION, epochs: epochs.slice(-RING_EPOCHS_KEPT) });
}

/** The epochs of a stored ring, oldest first; throws one clear line when the value is not one. */
export function decodeRing(raw: string, key: string): StoredEpoch[] {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = null;
  }
  const record = value as { v?: unknown; epochs?: unknown } | null;
  const epochs = record?.epochs;
  if (
    record?.v !== RING_VERSION ||
    !Array.isArray(epochs) ||
    epochs.length === 0 ||
    !epochs.every(
      (e: Partial<StoredEpoch>) =>
        Number.isInteger(e.epoch) &&
        typeof e.from === 'string' &&
        Array.isArray(e.names) &&
        e.names.length > 0 &&
        e.names.every((n) => typeof n === 'string'),
    )
  ) {
    throw new Error(
      `the ring key "${key}" does not hold a changeq ring (version ${RING_VERSION}); delete it only with every process stopped (the next ingest writes it from workers.toml)`,
    );
  }
  return (epochs as StoredEpoch[]).sort((a, b) => a.epoch - b.epoch);
}
