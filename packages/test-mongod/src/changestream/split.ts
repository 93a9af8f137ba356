// $changeStreamSplitLargeEvent (MongoDB 7.0, backported to 6.0.9; manual: "Large Change Stream
// Events"): an event whose BSON exceeds the limit is cut into fragments, each within it, carrying
// `splitEvent: {fragment, of}` (from 1) and its own resume token. The top-level fields other than
// `_id` are packed greedily, smallest first (ties by name), as many per fragment as fit; a field
// that cannot fit on its own makes the event unsplittable (7182500). Without the stage an event
// larger than a BSON object may be fails the stream with 10334 BSONObjectTooLarge.
import { Int32 } from 'bson';
import { BSON } from 'bson';
import type { Doc } from '../bson/types.js';
import { MongoServerError } from '../errors.js';
import { encodeToken } from '../history/token.js';
import type { TokenPosition } from '../history/token.js';
import { serialize } from '../wire/raw.js';

/** BSONObjMaxInternalSize: 16 MB plus 16 KB of room for the server's own fields. */
export const MAX_EVENT_SIZE = 16 * 1024 * 1024 + 16 * 1024;
/** The split stage's limit (kBSONObjMaxChangeEventSize): 8 KB under MAX_EVENT_SIZE. */
export const SPLIT_THRESHOLD = MAX_EVENT_SIZE - 8 * 1024;

export interface Fragment {
  bytes: Buffer;
  token: string;
}

/** The error a stream without the split stage fails with for an oversized event. */
export function eventTooLarge(size: number, id: unknown): MongoServerError {
  const data = (id as { _data?: unknown } | undefined)?._data;
  return new MongoServerError(
    10334,
    `BSONObj size: ${size} (0x${size.toString(16).toUpperCase()}) is invalid. Size must be between 0 and ${MAX_EVENT_SIZE}(16MB) First element: _id: { _data: "${String(data)}" }`,
  );
}

/** Size of `name: value` as a BSON element. */
function elementSize(name: string, value: unknown): number {
  return BSON.calculateObjectSize({ [name]: value }) - 5;
}

/** Split `event` (whose resume token is at `position`) into fragments. */
export function splitEvent(event: Doc, position: TokenPosition): Fragment[] {
  const eventToken = { _data: encodeToken(position) };
  const maxFragmentSize = SPLIT_THRESHOLD - BSON.calculateObjectSize(eventToken);
  const fields = Object.entries(event)
    .filter(([name]) => name !== '_id')
    .map(([name, value]) => ({ name, value, size: elementSize(name, value) }))
    .sort((a, b) => a.size - b.size || Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
  if (fields.length === 0) {
    throw new MongoServerError(
      7182502,
      "Cannot split an empty event or an event containing solely '_id' field",
    );
  }
  const groups: { token: string; fields: typeof fields }[] = [];
  let i = 0;
  while (i < fields.length) {
    const token = encodeToken({ ...position, fragment: groups.length });
    // What every fragment carries: its own _id and splitEvent (and, as on the server, the
    // resume token once more as the sort key it is tracked by).
    let size =
      BSON.calculateObjectSize({
        _id: { _data: token },
        splitEvent: { fragment: new Int32(1), of: new Int32(0) },
      }) + elementSize('$sortKey', { _data: token });
    const group: typeof fields = [];
    do {
      const f = fields[i] as (typeof fields)[number];
      group.push(f);
      size += f.size;
      i++;
    } while (
      i < fields.length &&
      size + (fields[i] as (typeof fields)[number]).size <= maxFragmentSize
    );
    if (size > maxFragmentSize) {
      throw new MongoServerError(
        7182500,
        `Splitting change event failed: fragment size ${size} is greater than maximum allowed fragment size ${maxFragmentSize}`,
      );
    }
    groups.push({ token, fields: group });
  }
  return groups.map(({ token, fields: group }, n) => {
    const doc: Doc = {
      _id: { _data: token },
      splitEvent: { fragment: new Int32(n + 1), of: new Int32(groups.length) },
    };
    for (const f of group) doc[f.name] = f.value;
    return { bytes: serialize(doc), token };
  });
}
