/**
 * Canonical bytes of a BSON `_id` value: two values get the same bytes exactly when MongoDB's
 * `_id` index treats them as the same key.
 *
 * MongoDB compares index keys with its BSON comparison order: values of distinct type classes
 * differ (in the order MinKey < null < numbers < strings < objects < arrays < BinData < ObjectId <
 * booleans < dates < timestamps < regular expressions < code < code with scope < MaxKey), and
 * within a class:
 *
 * - numbers (int32, int64, double, Decimal128) compare by their exact mathematical value, so
 *   `1`, `1.0`, `Long(1)`, `1n` and `Decimal128('1.00')` are one key, `0` equals `-0`, every NaN
 *   equals every other NaN, and the double 0.1 (exactly 0.1000000000000000055511151231257827...)
 *   is not `Decimal128('0.1')`. Each finite number is written as its exact decimal value in a
 *   normal form (no trailing zeros in the coefficient), so no precision is lost for int64 beyond
 *   2^53 or for doubles;
 * - strings compare by code points (the default simple collation), and a BSON symbol is a string;
 * - embedded documents compare field by field in order (name, then value, recursively) and
 *   arrays element by element, so `{a: 1, b: 2}` is not `{b: 2, a: 1}` but `{a: 1}` is
 *   `{a: Long(1)}`;
 * - BinData compares subtype and bytes (a bson `UUID` is a Binary of subtype 4);
 * - dates compare by milliseconds, timestamps by (t, i), regular expressions by pattern and
 *   options.
 *
 * The key is a function of the BSON value the driver would send for the given JavaScript value
 * (with the driver's default options): `undefined` is written as null (as the driver does with
 * `ignoreUndefined: false`), a JavaScript `RegExp` carries the options bson writes for it (`i`,
 * `m`, and `s` for the `g` flag, which the driver turns back into `g` when it reads), a `Buffer`
 * or `Uint8Array` is BinData of subtype 0, a `DBRef` is the document `{$ref, $id, $db, ...}`.
 * Hence routing a value and routing what `BSON.deserialize(BSON.serialize(value))` returns give
 * the same result. Values that cannot be BSON (functions, symbols, class instances that are not
 * bson types, invalid dates, cyclic structures, bigints outside int64) throw a TypeError.
 *
 * The encoding is prefix-free (each value starts with its type tag and every variable-length
 * part is length-prefixed), so concatenations of keys cannot collide either.
 *
 * Changing this encoding re-routes documents: see "Golden vectors" in the package README.
 */

/** Type-class tags, in MongoDB's comparison order. Never renumber them. */
const enum Tag {
  MinKey = 1,
  Null = 2,
  Number = 3,
  String = 4,
  Object = 5,
  Array = 6,
  BinData = 7,
  ObjectId = 8,
  Boolean = 9,
  Date = 10,
  Timestamp = 11,
  RegExp = 12,
  Code = 13,
  CodeWithScope = 14,
  MaxKey = 15,
}

/** Kinds of numbers after the Number tag. */
const enum NumberKind {
  NaN = 0,
  NegativeInfinity = 1,
  Finite = 2,
  PositiveInfinity = 3,
}

/** MongoDB refuses deeper documents (its limit is 100 levels plus some headroom). */
const MAX_DEPTH = 200;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

class ByteWriter {
  private buffer = Buffer.allocUnsafe(64);
  private length = 0;

  private reserve(extra: number): void {
    if (this.length + extra <= this.buffer.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + extra));
    this.buffer.copy(next, 0, 0, this.length);
    this.buffer = next;
  }

  byte(value: number): void {
    this.reserve(1);
    this.buffer[this.length++] = value;
  }

  uint32(value: number): void {
    this.reserve(4);
    this.buffer.writeUInt32BE(value >>> 0, this.length);
    this.length += 4;
  }

  int64(value: bigint): void {
    this.reserve(8);
    this.buffer.writeBigInt64BE(value, this.length);
    this.length += 8;
  }

  bytes(value: Uint8Array): void {
    this.reserve(value.length);
    this.buffer.set(value, this.length);
    this.length += value.length;
  }

  /** A length-prefixed UTF-8 string. */
  string(value: string): void {
    const max = value.length * 3;
    this.reserve(4 + max);
    const written = this.buffer.write(value, this.length + 4, max, 'utf8');
    this.buffer.writeUInt32BE(written, this.length);
    this.length += 4 + written;
  }

  lengthPrefixed(value: Uint8Array): void {
    this.uint32(value.length);
    this.bytes(value);
  }

  result(): Buffer {
    return Buffer.from(this.buffer.subarray(0, this.length));
  }
}

/** The bson classes are recognised by `_bsontype`, as bson itself does. */
interface BsonLike {
  _bsontype: string;
  [key: string]: unknown;
}

function bsonType(value: object): string | undefined {
  const type = (value as Partial<BsonLike>)._bsontype;
  return typeof type === 'string' ? type : undefined;
}

function describe(value: unknown): string {
  if (typeof value === 'function') return `a function (${value.name || 'anonymous'})`;
  if (typeof value === 'symbol') return `a symbol (${value.toString()})`;
  if (typeof value === 'object' && value !== null) {
    const name = (Object.getPrototypeOf(value) as { constructor?: { name?: string } } | null)
      ?.constructor?.name;
    return `an instance of ${name || 'an unknown class'}`;
  }
  return typeof value;
}

function reject(value: unknown, path: string, why?: string): never {
  throw new TypeError(
    `cannot route by this _id: ${path} is ${why ?? describe(value)}, which is not a BSON value`,
  );
}

/**
 * Writes a finite number given as sign, decimal digits and a power-of-ten exponent, in normal
 * form: `-125e-2`, `1e2`, `0` (zero has no sign and no exponent).
 */
function writeDecimal(out: ByteWriter, negative: boolean, digits: string, exponent: number): void {
  let start = 0;
  while (start < digits.length - 1 && digits.charCodeAt(start) === 48) start++;
  let end = digits.length;
  while (end > start + 1 && digits.charCodeAt(end - 1) === 48) end--;
  const coefficient = digits.slice(start, end);
  out.byte(Tag.Number);
  out.byte(NumberKind.Finite);
  if (coefficient === '0') {
    out.string('0');
  } else {
    out.string(`${negative ? '-' : ''}${coefficient}e${exponent + (digits.length - end)}`);
  }
}

function writeSpecial(out: ByteWriter, kind: NumberKind): void {
  out.byte(Tag.Number);
  out.byte(kind);
}

const float64 = new DataView(new ArrayBuffer(8));

/** Writes a double by its exact value (every double is a finite binary fraction). */
function writeDouble(out: ByteWriter, value: number): void {
  if (Number.isNaN(value)) return writeSpecial(out, NumberKind.NaN);
  if (value === Infinity) return writeSpecial(out, NumberKind.PositiveInfinity);
  if (value === -Infinity) return writeSpecial(out, NumberKind.NegativeInfinity);
  if (Number.isSafeInteger(value)) {
    // Fast path for the common integer ids; -0 is written as 0.
    return writeDecimal(out, value < 0, String(Math.abs(value)), 0);
  }
  float64.setFloat64(0, value);
  const high = float64.getUint32(0);
  const low = float64.getUint32(4);
  const negative = high >>> 31 === 1;
  const biased = (high >>> 20) & 0x7ff;
  let mantissa = (BigInt(high & 0xfffff) << 32n) | BigInt(low);
  let exponent2: number;
  if (biased === 0) {
    exponent2 = -1074; // subnormal
  } else {
    mantissa |= 1n << 52n;
    exponent2 = biased - 1075;
  }
  if (mantissa === 0n) return writeDecimal(out, false, '0', 0);
  if (exponent2 >= 0)
    return writeDecimal(out, negative, (mantissa << BigInt(exponent2)).toString(), 0);
  while ((mantissa & 1n) === 0n && exponent2 < 0) {
    mantissa >>= 1n;
    exponent2++;
  }
  // mantissa / 2^k == mantissa * 5^k / 10^k
  const k = -exponent2;
  return writeDecimal(out, negative, (mantissa * 5n ** BigInt(k)).toString(), -k);
}

function writeInt64(out: ByteWriter, value: bigint): void {
  const negative = value < 0n;
  writeDecimal(out, negative, (negative ? -value : value).toString(), 0);
}

const DECIMAL_PATTERN = /^(-)?(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/;

/** Writes a Decimal128 by its exact value, from bson's string form (`1.00`, `-1.5E+3`, `NaN`). */
function writeDecimal128(out: ByteWriter, text: string, path: string): void {
  if (text === 'NaN' || text === '-NaN') return writeSpecial(out, NumberKind.NaN);
  if (text === 'Infinity') return writeSpecial(out, NumberKind.PositiveInfinity);
  if (text === '-Infinity') return writeSpecial(out, NumberKind.NegativeInfinity);
  const match = DECIMAL_PATTERN.exec(text);
  if (match === null)
    reject(text, path, `a Decimal128 with the unexpected form ${JSON.stringify(text)}`);
  const [, sign, whole = '', fraction = '', exponent = '0'] = match;
  writeDecimal(out, sign === '-', whole + fraction, Number(exponent) - fraction.length);
}

/** The option letters bson writes for a JavaScript RegExp (note: `g` is written as `s`). */
function jsRegExpOptions(value: RegExp): string {
  return `${value.ignoreCase ? 'i' : ''}${value.multiline ? 'm' : ''}${value.global ? 's' : ''}`;
}

function sortedOptions(options: string): string {
  return options.split('').sort().join('');
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

class Canonicalizer {
  private readonly out = new ByteWriter();
  private readonly path = new Set<object>();

  run(value: unknown): Buffer {
    this.value(value, '_id', 0);
    return this.out.result();
  }

  private value(value: unknown, where: string, depth: number): void {
    const out = this.out;
    switch (typeof value) {
      case 'string':
        out.byte(Tag.String);
        out.string(value);
        return;
      case 'number':
        writeDouble(out, value);
        return;
      case 'bigint':
        if (value < INT64_MIN || value > INT64_MAX) {
          reject(value, where, `the bigint ${value}, outside the int64 range`);
        }
        writeInt64(out, value);
        return;
      case 'boolean':
        out.byte(Tag.Boolean);
        out.byte(value ? 1 : 0);
        return;
      case 'undefined':
        out.byte(Tag.Null);
        return;
      case 'object':
        if (value === null) {
          out.byte(Tag.Null);
          return;
        }
        this.object(value, where, depth);
        return;
      default:
        reject(value, where);
    }
  }

  private object(value: object, where: string, depth: number): void {
    const out = this.out;
    const type = bsonType(value);
    if (type !== undefined) {
      const v = value as BsonLike;
      switch (type) {
        case 'ObjectId': {
          const id = v.id;
          if (!(id instanceof Uint8Array) || id.length !== 12)
            reject(value, where, 'a malformed ObjectId');
          out.byte(Tag.ObjectId);
          out.bytes(id);
          return;
        }
        case 'Int32':
        case 'Double':
          writeDouble(out, Number(v.value));
          return;
        case 'Long': {
          const bits = (BigInt(Number(v.high) >>> 0) << 32n) | BigInt(Number(v.low) >>> 0);
          writeInt64(out, BigInt.asIntN(64, bits));
          return;
        }
        case 'Decimal128':
          writeDecimal128(out, String(value), where);
          return;
        case 'Timestamp':
          out.byte(Tag.Timestamp);
          out.uint32(Number(v.t));
          out.uint32(Number(v.i));
          return;
        case 'Binary': {
          const buffer = v.buffer;
          if (!(buffer instanceof Uint8Array)) reject(value, where, 'a malformed Binary');
          out.byte(Tag.BinData);
          out.byte(Number(v.sub_type) & 0xff);
          out.lengthPrefixed(buffer.subarray(0, Number(v.position)));
          return;
        }
        case 'BSONSymbol':
          out.byte(Tag.String);
          out.string(String(v.value));
          return;
        case 'BSONRegExp':
          out.byte(Tag.RegExp);
          out.string(String(v.pattern));
          out.string(sortedOptions(String(v.options)));
          return;
        case 'MinKey':
          out.byte(Tag.MinKey);
          return;
        case 'MaxKey':
          out.byte(Tag.MaxKey);
          return;
        case 'Code': {
          const scope = v.scope;
          if (scope !== null && scope !== undefined && typeof scope === 'object') {
            out.byte(Tag.CodeWithScope);
            out.string(String(v.code));
            this.enter(scope, `${where}.scope`, depth, () =>
              this.document(scope, `${where}.scope`, depth),
            );
          } else {
            out.byte(Tag.Code);
            out.string(String(v.code));
          }
          return;
        }
        case 'DBRef': {
          // As bson writes it: {$ref, $id, $db (when set), ...fields}.
          const document: Record<string, unknown> = Object.assign(
            { $ref: v.collection, $id: v.oid },
            v.db !== null && v.db !== undefined ? { $db: v.db } : null,
            v.fields,
          );
          this.enter(value, where, depth, () => this.document(document, where, depth));
          return;
        }
        default:
          reject(value, where, `a bson value of the unsupported type ${type}`);
      }
    }
    if (value instanceof Date) {
      const ms = value.getTime();
      if (Number.isNaN(ms)) reject(value, where, 'an invalid Date');
      out.byte(Tag.Date);
      out.int64(BigInt(ms));
      return;
    }
    if (value instanceof Uint8Array) {
      out.byte(Tag.BinData);
      out.byte(0);
      out.lengthPrefixed(value);
      return;
    }
    if (value instanceof RegExp) {
      out.byte(Tag.RegExp);
      out.string(value.source);
      out.string(jsRegExpOptions(value));
      return;
    }
    if (Array.isArray(value)) {
      this.enter(value, where, depth, () => {
        out.byte(Tag.Array);
        out.uint32(value.length);
        for (let i = 0; i < value.length; i++) {
          this.value(value[i], `${where}[${i}]`, depth + 1);
        }
      });
      return;
    }
    if (value instanceof Map) {
      this.enter(value, where, depth, () => this.document(value, where, depth));
      return;
    }
    if (isPlainObject(value)) {
      this.enter(value, where, depth, () => this.document(value, where, depth));
      return;
    }
    reject(value, where);
  }

  private enter(value: object, where: string, depth: number, write: () => void): void {
    if (depth >= MAX_DEPTH) reject(value, where, `nested more than ${MAX_DEPTH} levels deep`);
    if (this.path.has(value)) reject(value, where, 'a cyclic structure');
    this.path.add(value);
    write();
    this.path.delete(value);
  }

  private document(value: object, where: string, depth: number): void {
    const out = this.out;
    const entries: [unknown, unknown][] =
      value instanceof Map ? [...(value as Map<unknown, unknown>)] : Object.entries(value);
    out.byte(Tag.Object);
    out.uint32(entries.length);
    for (const [key, field] of entries) {
      if (typeof key !== 'string')
        reject(key, `${where} (a Map key)`, `a ${typeof key}, not a string`);
      if (key.includes('\u0000'))
        reject(key, `${where}.${key}`, 'a field name with a NUL character');
      const inner = `${where}.${key}`;
      if (typeof field === 'function' || typeof field === 'symbol') reject(field, inner);
      out.string(key);
      this.value(field, inner, depth + 1);
    }
  }
}

/** The canonical bytes of a BSON `_id` value (see the module comment). Throws TypeError. */
export function canonicalKey(id: unknown): Buffer {
  return new Canonicalizer().run(id);
}
