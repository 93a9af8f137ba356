/**
 * What a watermark key holds (`ingestKeys().watermark(queue, kind)`): the position of the last
 * job an ingest committed to a queue, as a string that sorts in the order jobs are produced, so
 * that after a crash the jobs at or below it are recognised and skipped.
 *
 * - stream jobs: the event's resume token `_data` (a hex KeyString in oplog order);
 * - snapshot jobs: the copy's batch and index, zero-padded.
 */
import { compareTokenData } from '@changeq/shared';

/** The position of the `index`th document of the `seq`th batch of a snapshot copy. */
export function snapshotPosition(seq: number, index: number): string {
  return `${String(seq).padStart(12, '0')}:${String(index).padStart(6, '0')}`;
}

/** Compares two positions of the same kind (hex digits compare case-insensitively). */
export function comparePositions(a: string, b: string): number {
  return compareTokenData(a, b);
}

/** Whether a job at `position` is not yet in a queue whose watermark is `watermark`. */
export function isPastWatermark(position: string, watermark: string | undefined): boolean {
  return watermark === undefined || comparePositions(position, watermark) > 0;
}
