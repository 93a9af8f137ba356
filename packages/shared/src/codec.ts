import type { Document } from 'mongodb';
import {
  Binary,
  BSONRegExp,
  Code,
  DBRef,
  Decimal128,
  Double,
  EJSON,
  Int32,
  Long,
  MaxKey,
  MinKey,
  ObjectId,
  Timestamp,
  UUID,
  deserialize,
  serialize,
} from './bson.js';
import type { ChangeEvent } from './change-event.js';

/** Bump when the job payload changes shape; workers refuse versions they do not know. */
export const EVENT_JOB_VERSION = 1;

/** The data of one BullMQ job: one change event and what the worker needs to order it. */
export interface EventJobData {
  v: typeof EVENT_JOB_VERSION;
  /** `db.coll`, or `db` for database-wide events. */
  ns: string;
  /** The event's operationType. */
  op: string;
  /**
   * Identity of the document (see `documentIdentity`): events with the same value must run in
   * order. `null` for namespace-wide events (drop, rename, dropDatabase).
   */
  doc: string | null;
  /**
   * The event as canonical Extended JSON, so every BSON type survives the trip through Redis and
   * people can read it (Bull Board, redis-cli). `{}` if it cannot be written as Extended JSON.
   */
  event: Document;
  /**
   * The event as base64 BSON, present only when Extended JSON cannot hold it exactly: a field
   * name starting with `$` (legal in documents since MongoDB 5.0) would be read back as a type
   * wrapper (`{$numberInt: "7"}` as the number 7, `{$oid: "x"}` as an error). When present,
   * `decodeEvent` uses it and `event` is only for reading.
   */
  bson?: string;
  /**
   * Set when the document changed owner at a ring change (see RingRouter): the worker runs the
   * job only once each named old owner has passed its checkpoint for the epoch. Absent otherwise.
   */
  hold?: { epoch: number | string; workers: string[] };
  /**
   * Set when the event changed the document's routing key (`[routing]`): the worker runs the job
   * only once each of these handoffs passed (the old key's owner's checkpoint, placed right
   * before this event, and the old key's own ring hold if it moved at this epoch), so the
   * document's earlier events under the old key finished first. Absent otherwise.
   */
  after?: { epoch: number | string; workers: string[] }[];
  /**
   * Set on each event of a multi-document transaction: its place in the transaction as the
   * change stream showed it (see TransactionMark). Absent outside transactions.
   */
  txn?: TransactionMark;
  /**
   * With tracing on (OTEL_* set on the ingest): the W3C traceparent of the ingest's enqueue
   * span, the parent of the worker's spans for this event. Absent otherwise.
   */
  traceparent?: string;
}

/** An event's place in its multi-document transaction, as the change stream showed it. */
export interface TransactionMark {
  /**
   * The transaction: its `lsid` and `txnNumber` (the event's own fields) as canonical Extended
   * JSON as the driver decodes them, `{"lsid":{"id":{"$binary":…}},"txnNumber":{"$numberInt":"3"}}`.
   * Equal for every event of the transaction, different for every other transaction.
   */
  id: string;
  /**
   * The event's index among the transaction's events, from 0. Null, as `count`, for a
   * transaction of more than 10,000 events past a batch's end, which the ingest enqueues in parts.
   */
  index: number | null;
  /** How many events of the transaction the stream showed (after WATCH, MATCH and PIPELINE). */
  count: number | null;
}

const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function setField(target: Record<string, unknown>, key: string, value: unknown): void {
  // defineProperty, not assignment: a field named __proto__ must stay data.
  Object.defineProperty(target, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

/**
 * Replaces the plain JavaScript values the driver hands out by the BSON types it would write for
 * them, so that Extended JSON records the BSON type rather than guess it: a number becomes Int32
 * exactly when bson writes it as int32 (otherwise Double: Extended JSON would turn a whole double
 * such as 2^60 into an int64, and round it), a RegExp becomes the BSONRegExp bson writes (`g` as
 * `s`; Extended JSON refuses the `g` flag). Notes in `state` whether a field name starts with `$`.
 */
function explicitTypes(value: unknown, state: { dollar: boolean }): unknown {
  switch (typeof value) {
    case 'number':
      return !Object.is(value, -0) &&
        Number.isSafeInteger(value) &&
        value >= INT32_MIN &&
        value <= INT32_MAX
        ? new Int32(value)
        : new Double(value);
    case 'bigint':
      return Long.fromBigInt(value);
    case 'object':
      break;
    default:
      return value;
  }
  if (value === null) return value;
  if (value instanceof RegExp) {
    const options = `${value.ignoreCase ? 'i' : ''}${value.multiline ? 'm' : ''}${value.global ? 's' : ''}`;
    return new BSONRegExp(value.source, options);
  }
  if (Array.isArray(value)) return value.map((item: unknown) => explicitTypes(item, state));
  const type = (value as { _bsontype?: unknown })._bsontype;
  if (type === 'Code') {
    const code = value as Code;
    return code.scope ? new Code(code.code, explicitTypes(code.scope, state) as Document) : code;
  }
  if (type === 'DBRef') {
    const ref = value as DBRef;
    return new DBRef(
      ref.collection,
      explicitTypes(ref.oid, state) as DBRef['oid'],
      ref.db,
      explicitTypes(ref.fields, state) as Document,
    );
  }
  if (type !== undefined || !isPlainObject(value)) return value; // bson values, Date, Buffer
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    if (key.startsWith('$')) state.dollar = true;
    setField(out, key, explicitTypes(value[key], state));
  }
  return out;
}

/** Marks a value the fast encoder leaves to the general path below. */
const SLOW = Symbol('slow');

function formatDouble(value: number): string {
  if (Object.is(Math.sign(value), -0)) return '-0.0';
  return Number.isInteger(value) ? value.toFixed(1) : value.toString();
}

/**
 * Canonical Extended JSON for the values the driver hands out in change events, written in one
 * pass: exactly what `EJSON.serialize(explicitTypes(value))` produces (a test holds them equal),
 * at a fraction of the cost, because the ingest encodes every event. Anything unusual (regexes,
 * code, symbols, DBRefs, vectors, field names starting with `$`, invalid dates) answers SLOW.
 */
function fastCanonical(value: unknown): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return !Object.is(value, -0) &&
        Number.isInteger(value) &&
        value >= INT32_MIN &&
        value <= INT32_MAX
        ? { $numberInt: String(value) }
        : { $numberDouble: formatDouble(value) };
    case 'bigint':
      return { $numberLong: value.toString() };
    case 'object':
      break;
    default:
      return SLOW;
  }
  if (value === null) return null;
  if (Array.isArray(value)) {
    const out: unknown[] = new Array(value.length);
    for (let i = 0; i < value.length; i += 1) {
      const item = fastCanonical(value[i]);
      if (item === SLOW) return SLOW;
      out[i] = item;
    }
    return out;
  }
  if (value instanceof Date) {
    const time = value.getTime();
    return Number.isNaN(time) ? SLOW : { $date: { $numberLong: String(time) } };
  }
  const type = (value as { _bsontype?: unknown })._bsontype;
  if (type !== undefined) {
    switch (type) {
      case 'ObjectId':
        return { $oid: (value as ObjectId).toHexString() };
      case 'Long':
        return { $numberLong: (value as Long).toString() };
      case 'Int32':
        return { $numberInt: String((value as Int32).value) };
      case 'Double':
        return { $numberDouble: formatDouble((value as Double).value) };
      case 'Decimal128':
        return { $numberDecimal: (value as Decimal128).toString() };
      case 'Timestamp':
        return { $timestamp: { t: (value as Timestamp).t, i: (value as Timestamp).i } };
      case 'Binary': {
        const binary = value as Binary;
        if (binary.sub_type === 9) return SLOW; // vectors are validated by the general path
        const subType = binary.sub_type.toString(16);
        return {
          $binary: {
            base64: Buffer.from(
              binary.buffer.buffer,
              binary.buffer.byteOffset,
              binary.buffer.byteLength,
            ).toString('base64'),
            subType: subType.length === 1 ? `0${subType}` : subType,
          },
        };
      }
      case 'MinKey':
        return { $minKey: 1 };
      case 'MaxKey':
        return { $maxKey: 1 };
      default:
        return SLOW;
    }
  }
  if (!isPlainObject(value)) return SLOW;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    if (key.startsWith('$') || key === '__proto__') return SLOW;
    const item = fastCanonical(value[key]);
    if (item === SLOW) return SLOW;
    out[key] = item;
  }
  return out;
}

/** The fast writer alone: null where it defers to the general path (exported for tests). */
export function fastExtendedJson(value: unknown): Document | null {
  const fast = fastCanonical(value);
  return fast === SLOW ? null : (fast as Document);
}

/** Canonical Extended JSON of a driver value, by the fast path when it can (exported for tests). */
export function canonicalExtendedJson(value: unknown): {
  json: Document | undefined;
  dollar: boolean;
} {
  const fast = fastCanonical(value);
  if (fast !== SLOW) return { json: fast as Document, dollar: false };
  return canonicalExtendedJsonGeneral(value);
}

/** The general (slower) path: bson's own Extended JSON writer after making types explicit. */
export function canonicalExtendedJsonGeneral(value: unknown): {
  json: Document | undefined;
  dollar: boolean;
} {
  const state = { dollar: false };
  try {
    return {
      json: EJSON.serialize(explicitTypes(value, state), { relaxed: false }) as Document,
      dollar: state.dollar,
    };
  } catch {
    return { json: undefined, dollar: state.dollar }; // not expected after explicitTypes
  }
}

/** Encodes a change event as it came from the driver into job data. */
export function encodeEvent(
  event: ChangeEvent | Document,
  route: { ns: string; op: string; doc: string | null },
): EventJobData {
  const { json: readable, dollar } = canonicalExtendedJson(event);
  const state = { dollar };
  const data: EventJobData = {
    v: EVENT_JOB_VERSION,
    ns: route.ns,
    op: route.op,
    doc: route.doc,
    event: readable ?? {},
  };
  if (state.dollar || readable === undefined) {
    data.bson = Buffer.from(serialize(event as Document)).toString('base64');
  }
  return data;
}

/**
 * Restores the event with the values the driver produced: canonical Extended JSON keeps the
 * exact BSON types (or `bson` keeps the exact bytes), and a BSON round trip with the driver's
 * default options (promoteLongs and so on) turns them into the same JavaScript values the driver
 * hands out.
 */
export function decodeEvent<T extends Document = Document>(data: EventJobData): ChangeEvent<T> {
  if (data.v !== EVENT_JOB_VERSION) {
    throw new Error(
      `job data version ${String(data.v)} is not supported by this worker (expects ${EVENT_JOB_VERSION})`,
    );
  }
  if (typeof data.bson === 'string') {
    return deserialize(Buffer.from(data.bson, 'base64')) as ChangeEvent<T>;
  }
  const fast = fastDecode(data.event);
  if (fast !== SLOW) return fast as ChangeEvent<T>;
  return decodeEventGeneral<T>(data);
}

/** The general (slower) reader: bson's Extended JSON reader, then a BSON round trip. */
export function decodeEventGeneral<T extends Document = Document>(
  data: EventJobData,
): ChangeEvent<T> {
  let event = data.event;
  let typed: Document;
  try {
    typed = EJSON.deserialize(event, { relaxed: false }) as Document;
  } catch (error) {
    // The one value the driver produces that Extended JSON writes but cannot read back: a BSON
    // date outside JavaScript's range (beyond year 275760, such as Java's Long.MAX_VALUE "forever"
    // dates), which the driver hands out as an Invalid Date. Carry those through as markers.
    const repaired = markInvalidDates(event);
    if (repaired === event) throw error;
    event = repaired;
    typed = EJSON.deserialize(event, { relaxed: false }) as Document;
    return restoreInvalidDates(deserialize(serialize(typed))) as ChangeEvent<T>;
  }
  return deserialize(serialize(typed)) as ChangeEvent<T>;
}

const JS_INT_MAX = 2 ** 53;
const INTEGER = /^-?\d+$/;
const DOUBLE = /^(-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?|-?Infinity|NaN)$/;
const OBJECT_ID = /^[0-9a-fA-F]{24}$/;

/**
 * Canonical Extended JSON back to the values the driver hands out, in one pass: the same result
 * as `deserialize(serialize(EJSON.deserialize(json)))` with the driver's default options (a test
 * holds them equal), for the wrappers the fast writer emits. Anything else answers SLOW. Every
 * `$`-key object here is a type wrapper: events with `$` field names travel as `bson` instead.
 */
function fastDecode(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    const out: unknown[] = new Array(value.length);
    for (let i = 0; i < value.length; i += 1) {
      const item = fastDecode(value[i]);
      if (item === SLOW) return SLOW;
      out[i] = item;
    }
    return out;
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  const first = keys[0];
  if (keys.length === 1 && first !== undefined && first.startsWith('$')) {
    const inner = record[first];
    switch (first) {
      case '$numberInt':
        return typeof inner === 'string' && INTEGER.test(inner) ? Number(inner) : SLOW;
      case '$numberDouble':
        return typeof inner === 'string' && DOUBLE.test(inner) ? parseFloat(inner) : SLOW;
      case '$numberLong': {
        if (typeof inner !== 'string' || !INTEGER.test(inner)) return SLOW;
        const long = Long.fromString(inner);
        return long.lessThanOrEqual(JS_INT_MAX) && long.greaterThanOrEqual(-JS_INT_MAX)
          ? long.toNumber()
          : long;
      }
      case '$numberDecimal':
        return Decimal128.fromString(inner as string);
      case '$oid':
        return typeof inner === 'string' && OBJECT_ID.test(inner) ? new ObjectId(inner) : SLOW;
      case '$date': {
        const millis = (inner as { $numberLong?: unknown } | null)?.$numberLong;
        if (typeof millis !== 'string' || !INTEGER.test(millis)) return SLOW;
        return new Date(Number(millis));
      }
      case '$timestamp': {
        const { t, i } = inner as { t: number; i: number };
        return new Timestamp({ t, i });
      }
      case '$binary': {
        const { base64, subType } = inner as { base64: string; subType: string };
        const type = parseInt(subType, 16);
        if (type === 2 || type === 9) return SLOW; // old byte arrays and vectors: general path
        const bytes = Buffer.from(base64, 'base64');
        if (type === 4 && bytes.length === 16) return new UUID(bytes);
        return new Binary(bytes, type);
      }
      case '$minKey':
        return new MinKey();
      case '$maxKey':
        return new MaxKey();
      default:
        return SLOW;
    }
  }
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    if (key === '__proto__') return SLOW;
    const item = fastDecode(record[key]);
    if (item === SLOW) return SLOW;
    out[key] = item;
  }
  return out;
}

/** The fast reader alone: SLOW-free result or null (exported for tests). */
export function fastDecodeEvent(json: Document): Document | null {
  const fast = fastDecode(json);
  return fast === SLOW ? null : (fast as Document);
}

const INVALID_DATE_MARKER = '\u0000changeq:invalid-date\u0000';

function isInvalidDateEjson(value: Record<string, unknown>): boolean {
  const date = value.$date as Record<string, unknown> | undefined;
  return (
    Object.keys(value).length === 1 &&
    typeof date === 'object' &&
    date !== null &&
    Object.keys(date).length === 1 &&
    date.$numberLong === 'NaN'
  );
}

/** Replaces `{$date: {$numberLong: "NaN"}}` by a marker string; returns `value` if none. */
function markInvalidDates(value: unknown): Document {
  const walk = (node: unknown): unknown => {
    if (typeof node !== 'object' || node === null) return node;
    if (Array.isArray(node)) {
      const items = node.map(walk);
      return items.some((item, i) => item !== node[i]) ? items : node;
    }
    const record = node as Record<string, unknown>;
    if (isInvalidDateEjson(record)) return INVALID_DATE_MARKER;
    let out: Record<string, unknown> | undefined;
    for (const key of Object.keys(record)) {
      const item = walk(record[key]);
      if (item !== record[key]) {
        out ??= Object.defineProperties({}, Object.getOwnPropertyDescriptors(record));
        setField(out, key, item);
      }
    }
    return out ?? node;
  };
  return walk(value) as Document;
}

/** Turns the markers of `markInvalidDates` back into Invalid Dates, as the driver hands out. */
function restoreInvalidDates(value: unknown): unknown {
  if (value === INVALID_DATE_MARKER) return new Date(NaN);
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = restoreInvalidDates(value[i]);
  } else if (isPlainObject(value)) {
    for (const key of Object.keys(value)) setField(value, key, restoreInvalidDates(value[key]));
  }
  return value;
}
