// Canonical keys for _id values: two values get the same key exactly when MongoDB's unique _id
// index treats them as the same key (1, 1.0, NumberLong(1) and NumberDecimal("1") collide).
import type { Binary, BSONRegExp, Decimal128, Long, ObjectId, Timestamp } from 'bson';
import { isPlainObject, typeName } from './types.js';

/** Exact decimal expansion of a finite double, so 0.1 (double) differs from Decimal128("0.1"). */
function exactDouble(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (!Number.isFinite(n)) return n > 0 ? 'Inf' : '-Inf';
  if (Number.isInteger(n)) return BigInt(n).toString();
  const buf = new DataView(new ArrayBuffer(8));
  buf.setFloat64(0, n);
  const bits = buf.getBigUint64(0);
  const sign = bits >> 63n ? '-' : '';
  const exp = Number((bits >> 52n) & 0x7ffn);
  let mant = bits & ((1n << 52n) - 1n);
  let e2: number;
  if (exp === 0) e2 = -1074;
  else {
    mant |= 1n << 52n;
    e2 = exp - 1075;
  }
  // value = mant * 2^e2 with e2 < 0 here => mant * 5^-e2 / 10^-e2
  const k = -e2;
  const digits = (mant * 5n ** BigInt(k)).toString().padStart(k + 1, '0');
  const intPart = digits.slice(0, digits.length - k);
  const frac = digits.slice(digits.length - k).replace(/0+$/, '');
  return `${sign}${intPart}.${frac}`;
}

function normalizeDecimal(s: string): string {
  if (/nan/i.test(s)) return 'NaN';
  if (/inf/i.test(s)) return s.startsWith('-') ? '-Inf' : 'Inf';
  const m = /^([+-]?)(\d+)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(s);
  if (!m) return s;
  const neg = m[1] === '-';
  let digits = (m[2] ?? '') + (m[3] ?? '');
  let exp = Number(m[4] ?? '0') - (m[3] ?? '').length;
  digits = digits.replace(/^0+/, '');
  if (digits === '') return '0';
  while (digits.endsWith('0')) {
    digits = digits.slice(0, -1);
    exp++;
  }
  let out: string;
  if (exp >= 0) out = digits + '0'.repeat(exp);
  else {
    const k = -exp;
    const padded = digits.padStart(k + 1, '0');
    out = `${padded.slice(0, padded.length - k)}.${padded.slice(padded.length - k)}`;
  }
  return neg ? `-${out}` : out;
}

const scratch = Buffer.allocUnsafe(25);

/**
 * `prefix + hex` as one flat string. bson's toHexString() and `+` build a tree of small
 * string pieces, about five times the size of the 25 characters, and these keys live as long as
 * their document (~200 bytes of pieces per document, measured in a heap snapshot).
 */
function flatAscii(prefix: string, hex: string): string {
  const end = scratch.write(prefix, 0, 'latin1') + scratch.write(hex, prefix.length, 'latin1');
  return scratch.toString('latin1', 0, end);
}

export function canonicalKey(v: unknown): string {
  switch (typeName(v)) {
    case 'missing':
    case 'null':
      return 'z';
    case 'int':
    case 'double':
      return `n${exactDouble(typeof v === 'number' ? v : (v as { value: number }).value)}`;
    case 'long':
      return `n${typeof v === 'bigint' ? v.toString() : (v as Long).toString()}`;
    case 'decimal':
      return `n${normalizeDecimal((v as Decimal128).toString())}`;
    case 'string':
      return `s${JSON.stringify(v)}`;
    case 'symbol':
      return `s${JSON.stringify(String((v as { value: unknown }).value))}`;
    case 'objectId':
      return flatAscii('o', (v as ObjectId).toHexString());
    case 'bool':
      return v ? 'bt' : 'bf';
    case 'date':
      return `d${(v as Date).getTime()}`;
    case 'timestamp': {
      const t = v as Timestamp;
      return `t${t.t}:${t.i}`;
    }
    case 'binData': {
      const b = v as Binary;
      return `B${b.sub_type}:${Buffer.from(b.buffer.subarray(0, b.position)).toString('base64')}`;
    }
    case 'regex': {
      const r = v as BSONRegExp | RegExp;
      return r instanceof RegExp ? `r/${r.source}/${r.flags}` : `r/${r.pattern}/${r.options}`;
    }
    case 'minKey':
      return 'm-';
    case 'maxKey':
      return 'm+';
    case 'array':
      return `[${(v as unknown[]).map(canonicalKey).join(',')}]`;
    default: {
      const obj = isPlainObject(v) ? v : ((v as { toJSON?: () => unknown }).toJSON?.() ?? {});
      const parts = Object.entries(obj as Record<string, unknown>)
        .filter(([, x]) => x !== undefined)
        .map(([k, x]) => `${JSON.stringify(k)}:${canonicalKey(x)}`);
      return `{${parts.join(',')}}`;
    }
  }
}
