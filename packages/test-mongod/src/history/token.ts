// Resume tokens. `_data` is an upper-case hex string of fixed-width big-endian fields, so tokens
// sort lexicographically in event order, like the KeyString tokens of a real server:
//   0x82 | secs u32 | inc u32 | kind u8 (0 high-water mark, 1 event) | txnOpIndex u32
//        | fromInvalidate u8 | format u8 [| fragment u32]
// A high-water-mark token sorts before every event at its cluster time. The fragments of an event
// split by $changeStreamSplitLargeEvent carry the fragment's index after the event's token, so
// they sort after the event's own token (a prefix of theirs), in order, and before the next event.
import { MongoServerError } from '../errors.js';
import type { Ts } from './clock.js';

const FORMAT = 0x01;
const LENGTH = 16;
const FRAGMENT_LENGTH = LENGTH + 4;

export interface TokenPosition {
  ts: Ts;
  kind: 'hwm' | 'event';
  txnOpIndex: number;
  fromInvalidate: boolean;
  /** The index (from 0) of the fragment of a split event. */
  fragment?: number;
}

export function encodeToken(p: TokenPosition): string {
  const b = Buffer.alloc(p.fragment === undefined ? LENGTH : FRAGMENT_LENGTH);
  b[0] = 0x82;
  b.writeUInt32BE(p.ts.t, 1);
  b.writeUInt32BE(p.ts.i, 5);
  b[9] = p.kind === 'event' ? 1 : 0;
  b.writeUInt32BE(p.txnOpIndex, 10);
  b[14] = p.fromInvalidate ? 1 : 0;
  b[15] = FORMAT;
  if (p.fragment !== undefined) b.writeUInt32BE(p.fragment, LENGTH);
  return b.toString('hex').toUpperCase();
}

export function eventToken(ts: Ts, txnOpIndex: number, fromInvalidate = false): string {
  return encodeToken({ ts, kind: 'event', txnOpIndex, fromInvalidate });
}

export function hwmToken(ts: Ts): string {
  return encodeToken({ ts, kind: 'hwm', txnOpIndex: 0, fromInvalidate: false });
}

function invalid(detail: string): MongoServerError {
  return new MongoServerError(260, `Invalid resume token: ${detail}`);
}

/** Parse `{ _data: "<hex>" }`; anything else is an InvalidResumeToken error (code 260). */
export function decodeToken(token: unknown): TokenPosition {
  if (token === null || typeof token !== 'object' || Array.isArray(token)) {
    throw invalid('expected a document');
  }
  const data = (token as { _data?: unknown })._data;
  if (typeof data !== 'string') throw invalid("missing or non-string '_data' field");
  if (
    !/^[0-9A-Fa-f]*$/.test(data) ||
    (data.length !== LENGTH * 2 && data.length !== FRAGMENT_LENGTH * 2)
  ) {
    throw invalid('unrecognized token format');
  }
  const b = Buffer.from(data, 'hex');
  if (
    b[0] !== 0x82 ||
    b[15] !== FORMAT ||
    (b[9] !== 0 && b[9] !== 1) ||
    (b[14] !== 0 && b[14] !== 1)
  ) {
    throw invalid('unrecognized token format');
  }
  const kind = b[9] === 1 ? 'event' : 'hwm';
  const pos: TokenPosition = {
    ts: { t: b.readUInt32BE(1), i: b.readUInt32BE(5) },
    kind,
    txnOpIndex: b.readUInt32BE(10),
    fromInvalidate: b[14] === 1,
  };
  if (kind === 'hwm' && (pos.txnOpIndex !== 0 || pos.fromInvalidate))
    throw invalid('malformed high-water mark');
  if (b.length === FRAGMENT_LENGTH) {
    if (kind !== 'event' || pos.fromInvalidate) throw invalid('malformed split event token');
    pos.fragment = b.readUInt32BE(LENGTH);
  }
  return pos;
}
