// MongoDB's BSON comparison order: first by canonical type rank, then by value within a type.
// Numbers of all types compare by value; strings compare by their UTF-8 bytes (simple collation).
import type { Binary, BSONRegExp, ObjectId, Timestamp } from 'bson';
import { exactNumber, isPlainObject, typeName, typeRank } from './types.js';

function cmpNum(a: number | bigint, b: number | bigint): number {
  if (typeof a === 'number' && typeof b === 'number') {
    // NaN sorts before every other number and equals itself.
    if (Number.isNaN(a)) return Number.isNaN(b) ? 0 : -1;
    if (Number.isNaN(b)) return 1;
    return a < b ? -1 : a > b ? 1 : 0;
  }
  if (typeof a === 'bigint' && typeof b === 'bigint') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'number') return -cmpBigNumber(b as bigint, a);
  return cmpBigNumber(a, b as number);
}

function cmpBigNumber(a: bigint, b: number): number {
  if (Number.isNaN(b)) return 1;
  if (b === Infinity) return -1;
  if (b === -Infinity) return 1;
  const fl = Math.floor(b);
  const big = BigInt(fl);
  if (a < big) return -1;
  if (a > big) return 1;
  return b === fl ? 0 : -1;
}

export function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  // UTF-16 order equals UTF-8 byte order except around surrogates; only pay for bytes then.
  // eslint-disable-next-line no-control-regex
  if (/^[\u0000-\ud7ff]*$/.test(a) && /^[\u0000-\ud7ff]*$/.test(b)) return a < b ? -1 : 1;
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function entriesOf(v: unknown): [string, unknown][] {
  if (Array.isArray(v)) return v.map((e, i) => [String(i), e]);
  if (isPlainObject(v)) return Object.entries(v).filter(([, x]) => x !== undefined);
  // DBRef and other object-like BSON values compare by their document form.
  const json = (v as { toJSON?: () => unknown }).toJSON?.();
  return isPlainObject(json) ? Object.entries(json) : [];
}

function compareDocs(a: unknown, b: unknown): number {
  const ea = entriesOf(a);
  const eb = entriesOf(b);
  const n = Math.min(ea.length, eb.length);
  for (let i = 0; i < n; i++) {
    const [ka, va] = ea[i] as [string, unknown];
    const [kb, vb] = eb[i] as [string, unknown];
    const tr = typeRank(va) - typeRank(vb);
    if (tr !== 0) return tr < 0 ? -1 : 1;
    const kc = compareStrings(ka, kb);
    if (kc !== 0) return kc;
    const vc = compareValues(va, vb);
    if (vc !== 0) return vc;
  }
  return ea.length === eb.length ? 0 : ea.length < eb.length ? -1 : 1;
}

/** Total order over BSON values as MongoDB sorts them. */
export function compareValues(a: unknown, b: unknown): number {
  const ra = typeRank(a);
  const rb = typeRank(b);
  if (ra !== rb) return ra < rb ? -1 : 1;
  switch (ra) {
    case 1:
    case 2:
    case 127:
      return 0;
    case 3:
      return cmpNum(exactNumber(a), exactNumber(b));
    case 4:
      return compareStrings(String(stringValue(a)), String(stringValue(b)));
    case 5:
    case 6:
      return compareDocs(a, b);
    case 7: {
      const ba = a as Binary;
      const bb = b as Binary;
      const la = ba.position;
      const lb = bb.position;
      if (la !== lb) return la < lb ? -1 : 1;
      if (ba.sub_type !== bb.sub_type) return ba.sub_type < bb.sub_type ? -1 : 1;
      return Buffer.compare(
        Buffer.from(ba.buffer.subarray(0, la)),
        Buffer.from(bb.buffer.subarray(0, lb)),
      );
    }
    case 8:
      return Buffer.compare(Buffer.from((a as ObjectId).id), Buffer.from((b as ObjectId).id));
    case 9:
      return a === b ? 0 : a ? 1 : -1;
    case 10: {
      const ta = (a as Date).getTime();
      const tb = (b as Date).getTime();
      return ta < tb ? -1 : ta > tb ? 1 : 0;
    }
    case 11: {
      const ta = a as Timestamp;
      const tb = b as Timestamp;
      if (ta.t !== tb.t) return ta.t < tb.t ? -1 : 1;
      return ta.i < tb.i ? -1 : ta.i > tb.i ? 1 : 0;
    }
    case 12: {
      const pa = regexParts(a);
      const pb = regexParts(b);
      return compareStrings(pa[0], pb[0]) || compareStrings(pa[1], pb[1]);
    }
    default:
      return compareStrings(String(a), String(b));
  }
}

function stringValue(v: unknown): string {
  if (typeof v === 'string') return v;
  return String((v as { value?: unknown }).value ?? v);
}

export function regexParts(v: unknown): [string, string] {
  if (v instanceof RegExp) return [v.source, v.flags];
  const r = v as BSONRegExp;
  return [r.pattern, r.options];
}

export function valuesEqual(a: unknown, b: unknown): boolean {
  return compareValues(a, b) === 0;
}

/** Equality that also distinguishes numeric types (used to detect no-op updates). */
export function identical(a: unknown, b: unknown): boolean {
  if (typeName(a) !== typeName(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => identical(x, bb[i]));
  }
  if (isPlainObject(a)) {
    const bo = b as Record<string, unknown>;
    const ka = Object.keys(a);
    const kb = Object.keys(bo);
    return ka.length === kb.length && ka.every((k, i) => k === kb[i] && identical(a[k], bo[k]));
  }
  return compareValues(a, b) === 0;
}
