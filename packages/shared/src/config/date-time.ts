/**
 * The one parser of a point in time given by a person (START_AT, `changeq token set --at`).
 * JavaScript's Date quietly rolls impossible dates over (2026-02-30 becomes 2026-03-02), so every
 * field is checked against the calendar first. The time must also fit a MongoDB cluster time,
 * whose seconds are an unsigned 32-bit number: 1970-01-01T00:00:00Z to 2106-02-07T06:28:15Z.
 */
import { UserError } from '../errors.js';

const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?(Z|[+-]\d{2}:?\d{2})?$/i;

/** The latest time a cluster time can hold (2^32 - 1 seconds after the epoch). */
export const LATEST_CLUSTER_TIME = new Date(0xffff_ffff * 1000);

function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** Why `value` is not a usable time, or the time. */
function parse(value: string): Date | string {
  const match = ISO.exec(value);
  if (match === null) return 'is not an ISO 8601 date-time';
  const [, y, mo, d, h = '00', mi = '00', s = '00', , zone] = match;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  if (month < 1 || month > 12) return `has the month ${mo}, which does not exist`;
  if (day < 1 || day > daysIn(year, month)) {
    return `has the day ${d}, which ${y}-${mo} does not have (it has ${daysIn(year, month)} days)`;
  }
  if (Number(h) > 23 || Number(mi) > 59 || Number(s) > 59) {
    return `has the time ${h}:${mi}:${s}, which does not exist`;
  }
  if (zone !== undefined && zone.toUpperCase() !== 'Z') {
    const [zh, zm] = [Number(zone.slice(1, 3)), Number(zone.slice(-2))];
    if (zh > 23 || zm > 59) return `has the UTC offset ${zone}, which does not exist`;
  }
  // A date alone is UTC midnight; a time without an offset is local time (as in JavaScript).
  const at = new Date(value.replace(' ', 'T').replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
  if (Number.isNaN(at.getTime())) return 'is not an ISO 8601 date-time';
  if (at.getTime() < 0) return 'is before 1970-01-01T00:00:00Z, where cluster times begin';
  if (at.getTime() > LATEST_CLUSTER_TIME.getTime()) {
    return `is after ${LATEST_CLUSTER_TIME.toISOString().replace('.000', '')}, the last second a MongoDB cluster time can hold`;
  }
  return at;
}

/**
 * Parses an ISO 8601 date-time (`2026-11-22`, `2026-11-22T08:00:00Z`, `...T08:00:00.5+01:00`)
 * or throws a UserError: `what` names the input (`START_AT`, `--at`), `fix` says how to set it.
 */
export function parseDateTime(raw: string, what: string, fix: (example: string) => string): Date {
  const result = parse(raw.trim());
  if (result instanceof Date) return result;
  throw new UserError(`${what}=${JSON.stringify(raw)} ${result}`, fix('2026-11-22T08:00:00Z'));
}
