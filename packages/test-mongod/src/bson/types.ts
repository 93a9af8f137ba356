// BSON value helpers. Documents are decoded with `promoteValues: false` so that numeric types
// (Int32, Double, Long, Decimal128) survive a round trip exactly as MongoDB stores them.
import { Double, Int32, Long } from 'bson';
import type { Decimal128 } from 'bson';

export type Doc = Record<string, unknown>;

export function isPlainObject(v: unknown): v is Doc {
  if (v === null || typeof v !== 'object') return false;
  if (Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

function bsontype(v: object): string | undefined {
  return (v as { _bsontype?: string })._bsontype;
}

export function isNumeric(v: unknown): boolean {
  if (typeof v === 'number' || typeof v === 'bigint') return true;
  if (v === null || typeof v !== 'object') return false;
  const t = bsontype(v);
  return t === 'Int32' || t === 'Double' || t === 'Long' || t === 'Decimal128';
}

/** A JS number for any numeric BSON value (lossy for huge Long/Decimal128); NaN otherwise. */
export function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v === null || typeof v !== 'object') return NaN;
  switch (bsontype(v)) {
    case 'Int32':
    case 'Double':
      return (v as Int32 | Double).value;
    case 'Long':
      return (v as Long).toNumber();
    case 'Decimal128':
      return Number((v as Decimal128).toString());
    default:
      return NaN;
  }
}

/** Numeric value for exact comparison: a JS number, or a bigint when a double cannot hold it. */
export function exactNumber(v: unknown): number | bigint {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return v;
  const t = bsontype(v as object);
  if (t === 'Long') {
    const l = v as Long;
    const n = l.toNumber();
    return Number.isSafeInteger(n) ? n : BigInt(l.toString());
  }
  if (t === 'Decimal128') {
    const s = (v as Decimal128).toString();
    const n = Number(s);
    if (Number.isFinite(n) && Number.isInteger(n) && !Number.isSafeInteger(n)) {
      const big = decimalStringToBigInt(s);
      if (big !== undefined) return big;
    }
    return n;
  }
  return toNumber(v);
}

function decimalStringToBigInt(s: string): bigint | undefined {
  const m = /^([+-]?)(\d+)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(s);
  if (!m) return undefined;
  const sign = m[1] === '-' ? -1n : 1n;
  const intPart = m[2] ?? '0';
  const frac = m[3] ?? '';
  const exp = Number(m[4] ?? '0') - frac.length;
  let digits = BigInt(intPart + frac);
  if (exp >= 0) digits *= 10n ** BigInt(exp);
  else {
    const div = 10n ** BigInt(-exp);
    if (digits % div !== 0n) return undefined;
    digits /= div;
  }
  return sign * digits;
}

/** BSON type names as used by $type and error messages. */
export function typeName(v: unknown): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) && Math.abs(v) < 2 ** 31 ? 'int' : 'double';
  if (typeof v === 'bigint') return 'long';
  if (Array.isArray(v)) return 'array';
  if (v instanceof Date) return 'date';
  if (v instanceof RegExp) return 'regex';
  if (typeof v === 'object') {
    switch (bsontype(v)) {
      case 'Int32':
        return 'int';
      case 'Double':
        return 'double';
      case 'Long':
        return 'long';
      case 'Decimal128':
        return 'decimal';
      case 'ObjectId':
        return 'objectId';
      case 'Binary':
        return 'binData';
      case 'Timestamp':
        return 'timestamp';
      case 'BSONRegExp':
        return 'regex';
      case 'MinKey':
        return 'minKey';
      case 'MaxKey':
        return 'maxKey';
      case 'Code':
        return 'javascript';
      case 'BSONSymbol':
        return 'symbol';
      case 'DBPointer':
        return 'dbPointer';
      default:
        return 'object';
    }
  }
  return 'object';
}

/** The canonical type order MongoDB uses when comparing values of different BSON types. */
export function typeRank(v: unknown): number {
  switch (typeName(v)) {
    case 'minKey':
      return 1;
    case 'missing':
    case 'null':
      return 2;
    case 'int':
    case 'double':
    case 'long':
    case 'decimal':
      return 3;
    case 'string':
    case 'symbol':
      return 4;
    case 'object':
      return 5;
    case 'array':
      return 6;
    case 'binData':
      return 7;
    case 'objectId':
      return 8;
    case 'bool':
      return 9;
    case 'date':
      return 10;
    case 'timestamp':
      return 11;
    case 'regex':
      return 12;
    case 'dbPointer':
      return 13;
    case 'javascript':
      return 14;
    case 'maxKey':
      return 127;
    default:
      return 5;
  }
}

/** Int32 for values that fit, Long otherwise, keeping integer-ness like the server does. */
export function makeInteger(n: number): Int32 | Long | Double {
  if (Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31) return new Int32(n);
  if (Number.isSafeInteger(n)) return Long.fromNumber(n);
  return new Double(n);
}

/** Copy a document tree: plain objects and arrays are copied, BSON values (immutable) are shared. */
export function deepClone<T>(v: T): T {
  if (Array.isArray(v)) return v.map((e: unknown) => deepClone(e)) as T;
  if (isPlainObject(v)) {
    const out: Doc = {};
    for (const k of Object.keys(v)) out[k] = deepClone(v[k]);
    return out as T;
  }
  return v;
}

export function isTruthyOption(v: unknown): boolean {
  if (v === undefined || v === null || v === false) return false;
  if (isNumeric(v)) return toNumber(v) !== 0;
  return Boolean(v);
}
