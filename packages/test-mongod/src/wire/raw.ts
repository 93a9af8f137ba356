// Reply assembly around pre-serialised BSON: cursor batches are built from cached bytes without
// re-serialising each document (see changestream/event.ts).
import { BSON } from 'bson';
import { isPlainObject } from '../bson/types.js';
import type { Doc } from '../bson/types.js';

/** Already-serialised BSON documents placed as an array value. */
export class RawArray {
  constructor(readonly items: Buffer[]) {}
}

/**
 * BSON.serialize works in a module-wide scratch buffer (17 MB at first) and, past its end, throws
 * or silently truncates strings. A change event can be bigger (it is then split or refused by the
 * caller), so anything near that size is serialised again after growing the scratch buffer to the
 * document's exact size (it stays that big: only servers that see such events pay for it).
 */
const SCRATCH_SAFE = 16 * 1024 * 1024;

function serializeExact(doc: Doc): Buffer {
  BSON.setInternalBufferSize(BSON.calculateObjectSize(doc) + 1024);
  const u = BSON.serialize(doc);
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** BSON.serialize as a Buffer view (no copy). */
export function serialize(doc: Doc): Buffer {
  let u: Uint8Array;
  try {
    u = BSON.serialize(doc);
  } catch (err) {
    if (err instanceof RangeError) return serializeExact(doc);
    throw err;
  }
  if (u.byteLength >= SCRATCH_SAFE) return serializeExact(doc);
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

function cstring(s: string): Buffer {
  return Buffer.from(`${s}\0`, 'utf8');
}

function elementsOf(doc: Doc): Buffer {
  const b = serialize(doc);
  return b.subarray(4, b.length - 1);
}

function hasRaw(v: unknown): boolean {
  if (v instanceof RawArray) return true;
  if (isPlainObject(v)) return Object.values(v).some(hasRaw);
  return false;
}

function encodeRawArray(arr: RawArray): Buffer {
  // One allocation for the whole array: each element is 0x03, its index as a cstring, the doc.
  let len = 5;
  const { items } = arr;
  for (let i = 0; i < items.length; i++) len += 2 + String(i).length + (items[i] as Buffer).length;
  const out = Buffer.allocUnsafe(len);
  out.writeInt32LE(len, 0);
  let off = 4;
  for (let i = 0; i < items.length; i++) {
    out[off++] = 3;
    off += out.write(String(i), off, 'latin1');
    out[off++] = 0;
    const item = items[i] as Buffer;
    item.copy(out, off);
    off += item.length;
  }
  out[off] = 0;
  return out;
}

/** Serialise a reply document whose values may include RawArray at any depth. */
export function encodeDocument(doc: Doc): Buffer {
  if (!hasRaw(doc)) return serialize(doc);
  const parts: Buffer[] = [];
  let plain: Doc = {};
  const flushPlain = (): void => {
    if (Object.keys(plain).length > 0) parts.push(elementsOf(plain));
    plain = {};
  };
  for (const [k, v] of Object.entries(doc)) {
    if (v === undefined) continue;
    if (v instanceof RawArray) {
      flushPlain();
      parts.push(Buffer.from([4]), cstring(k), encodeRawArray(v));
    } else if (isPlainObject(v) && hasRaw(v)) {
      flushPlain();
      parts.push(Buffer.from([3]), cstring(k), encodeDocument(v));
    } else plain[k] = v;
  }
  flushPlain();
  let len = 5;
  for (const p of parts) len += p.length;
  const size = Buffer.allocUnsafe(4);
  size.writeInt32LE(len, 0);
  return Buffer.concat([size, ...parts, Buffer.from([0])], len);
}
