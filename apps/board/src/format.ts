/**
 * What Bull Board shows as a job's data. The ingest stores each change event as canonical Extended
 * JSON (`{"$numberInt": "3"}`, and base64 BSON when a field name starts with `$`): exact, but hard
 * to read. The board shows the event in relaxed Extended JSON instead: numbers as numbers, dates
 * as ISO strings, ObjectIds as `{"$oid": ...}`, Decimal128 as `{"$numberDecimal": ...}`.
 * `ns`, `op`, `doc` and, in dead-letter queues, `deadLetter` come first.
 *
 * Unlike bson's relaxed mode, it never shows a rounded value: an int64 beyond 2^53 stays
 * `{"$numberLong": "..."}` (the driver hands handlers such a value as a rounded number; the board
 * shows what is stored), and a double keeps its wrapper when it is not finite or is -0.
 *
 * Only the display changes: the job in Redis keeps its exact encoding.
 */
// The driver's BSON, never the `bson` package's ESM build (a second copy of the classes).
import { BSON } from 'mongodb';
import { EVENT_JOB_VERSION, type EventJobData } from '@changeq/shared';

function isEventJobData(data: unknown): data is EventJobData & Record<string, unknown> {
  if (typeof data !== 'object' || data === null) return false;
  const record = data as Record<string, unknown>;
  return (
    typeof record.ns === 'string' &&
    typeof record.op === 'string' &&
    typeof record.event === 'object' &&
    record.event !== null
  );
}

/** The latest date relaxed Extended JSON writes as an ISO string (the year 9999). */
const MAX_ISO_DATE_MS = 253_402_300_799_999;

function onlyKey(record: Record<string, unknown>): string | undefined {
  const keys = Object.keys(record);
  return keys.length === 1 ? keys[0] : undefined;
}

/** Canonical Extended JSON to relaxed Extended JSON, keeping every value exact. */
export function relaxExtendedJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(relaxExtendedJson);
  if (typeof value !== 'object' || value === null) return value;
  const record = value as Record<string, unknown>;
  const key = onlyKey(record);
  const inner = key === undefined ? undefined : record[key];
  if (typeof inner === 'string') {
    if (key === '$numberInt') return Number(inner);
    if (key === '$numberLong') {
      const number = Number(inner);
      return Number.isSafeInteger(number) ? number : record;
    }
    if (key === '$numberDouble') {
      const number = Number(inner);
      return Number.isFinite(number) && !Object.is(number, -0) ? number : record;
    }
  }
  if (key === '$date' && typeof inner === 'object' && inner !== null) {
    const ms = Number((inner as Record<string, unknown>).$numberLong);
    return Number.isInteger(ms) && ms >= 0 && ms <= MAX_ISO_DATE_MS
      ? { $date: new Date(ms).toISOString() }
      : record;
  }
  const out: Record<string, unknown> = {};
  for (const [field, item] of Object.entries(record)) {
    // defineProperty, not assignment: a field named __proto__ must stay data.
    Object.defineProperty(out, field, {
      value: relaxExtendedJson(item),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/** The stored event as canonical Extended JSON (from the BSON copy when there is one). */
function canonicalEvent(data: EventJobData): unknown {
  if (typeof data.bson !== 'string') return data.event;
  const exact = BSON.deserialize(Buffer.from(data.bson, 'base64'), {
    promoteValues: false,
    promoteLongs: false,
    promoteBuffers: false,
  });
  return BSON.EJSON.serialize(exact, { relaxed: false });
}

export function formatJobData(data: unknown): unknown {
  if (!isEventJobData(data)) return data;
  const { v, ns, op, doc, event, bson, ...rest } = data;
  let readable: unknown = event;
  let decodeError: string | undefined;
  try {
    if (v !== EVENT_JOB_VERSION) {
      throw new Error(
        `job data version ${String(v)} is not known to this board (it reads version ${EVENT_JOB_VERSION})`,
      );
    }
    readable = relaxExtendedJson(canonicalEvent(data));
  } catch (error) {
    decodeError = error instanceof Error ? error.message : String(error);
  }
  return {
    ns,
    op,
    doc,
    ...rest,
    event: readable,
    ...(decodeError === undefined ? {} : { decodeError, v }),
    ...(bson === undefined || decodeError === undefined ? {} : { bson }),
  };
}
