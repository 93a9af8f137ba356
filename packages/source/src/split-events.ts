/**
 * Events over 16 MB. With `$changeStreamSplitLargeEvent` as the pipeline's last stage (MongoDB
 * 7.0, 6.0.9+), the server cuts such an event into fragments, consecutive in the stream, each
 * with `splitEvent: {fragment, of}` (from 1) and its own resume token, and the event's top-level
 * fields spread over them. The ingest joins them back into one event before planning its job.
 */
import type { ChangeStreamDocument, Document } from 'mongodb';

export const SPLIT_STAGE = { $changeStreamSplitLargeEvent: {} } as const;

/** `splitEvent` of a fragment; null for a whole event. */
export function fragmentOf(event: Document): { fragment: number; of: number } | null {
  const split = (event as { splitEvent?: { fragment?: unknown; of?: unknown } }).splitEvent;
  if (split === undefined) return null;
  return { fragment: Number(split.fragment), of: Number(split.of) };
}

/**
 * One event from its fragments, in order: every field but `splitEvent`, and as `_id` the last
 * fragment's resume token (resuming after it continues after the event; the job id and the
 * queue's watermark come from it). Throws when the fragments are not 1..of of one event.
 */
export function assembleFragments(fragments: readonly Document[]): ChangeStreamDocument {
  const of = fragments.length;
  const event: Document = {};
  fragments.forEach((fragment, index) => {
    const split = fragmentOf(fragment);
    if (split === null || split.fragment !== index + 1 || split.of !== of) {
      throw new Error(
        `a split change event's fragments arrived out of order (fragment ${index + 1} of ${of} was ${split ? `${split.fragment} of ${split.of}` : 'a whole event'})`,
      );
    }
    for (const [name, value] of Object.entries(fragment)) {
      if (name === 'splitEvent' || name === '_id') continue;
      event[name] = value;
    }
  });
  const last = fragments[of - 1];
  return { _id: last?._id, ...event } as ChangeStreamDocument;
}
