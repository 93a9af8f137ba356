/**
 * What an ingest's token key holds (`ingestKeys().token`): the resume position after which the
 * stream continues, a start marker (a time to start at) stored by the operator CLI, or the record
 * of a lost position, stored by an ingest that found Redis had lost its writes. Extended JSON
 * (canonical), so BSON types such as Timestamp survive.
 */
import type { Document, Timestamp } from 'mongodb';
import { BSON, UserError, tokenClusterTime, tokenData, type ResumeToken } from '@changeq/shared';

const { EJSON } = BSON;

/** Where the change stream continues: stored in Redis after the jobs before it are stored. */
export interface StoredPosition {
  token: ResumeToken;
  /** Cluster time of the token (from the last event, or decoded from the token), if known. */
  clusterTime: Timestamp | null;
  /** Wall time of the last event, if known. */
  wallTime: Date | null;
  savedAt: Date;
}

const POSITION_VERSION = 1;

/**
 * Stored in place of a token by `changeq token set --at` and `changeq resync`: the next start
 * opens the stream with `startAtOperationTime` (and the first batch replaces it with a token).
 */
export interface StartMarker {
  startAt: Timestamp;
  savedAt: Date;
  /** Who stored it and why, for `changeq token show` and the ingest's log. */
  reason: string;
}

/** A place the stream can start from: a resume position or a start time. */
export type StreamStart =
  { kind: 'position'; position: StoredPosition } | { kind: 'marker'; marker: StartMarker };

/**
 * Stored in place of a position by an ingest that found the token key gone, or holding an
 * older position than the one it had stored: Redis lost writes (it restarted empty, or from an
 * older copy of its data), and jobs may have gone with them. Every start refuses while it is
 * there, so that a restarted ingest does not take an empty Redis for a first start; the operator's
 * way on (`changeq token set --at`, `token reset`, `resync`) replaces it.
 */
export interface LostRecord {
  /** What the ingest had stored last. */
  had: StreamStart;
  /** What it found in its place (null: nothing). */
  found: StreamStart | null;
  detectedAt: Date;
}

/** What the token key holds. */
export type StoredStart = StreamStart | { kind: 'lost'; record: LostRecord };

function positionFields(position: StoredPosition): Document {
  return {
    token: position.token,
    clusterTime: position.clusterTime,
    wallTime: position.wallTime,
    savedAt: position.savedAt,
  };
}

function markerFields(marker: StartMarker): Document {
  return { startAtOperationTime: marker.startAt, savedAt: marker.savedAt, reason: marker.reason };
}

const startFields = (start: StreamStart): Document =>
  start.kind === 'position' ? positionFields(start.position) : markerFields(start.marker);

const stringify = (fields: Document) =>
  EJSON.stringify({ v: POSITION_VERSION, ...fields }, { relaxed: false });

export function encodePosition(position: StoredPosition): string {
  return stringify(positionFields(position));
}

export function encodeStartMarker(marker: StartMarker): string {
  return stringify(markerFields(marker));
}

export function encodeLostRecord(record: LostRecord): string {
  return stringify({
    lost: {
      had: startFields(record.had),
      found: record.found && startFields(record.found),
      detectedAt: record.detectedAt,
    },
  });
}

/** The message for a token key whose value cannot be used, naming the key and the ways out. */
export function corruptTokenError(key: string, why: string): UserError {
  return new UserError(
    `the resume token stored in Redis at "${key}" is corrupt (${why}); changeq will not guess where to continue`,
    'look at it with `changeq token show`, then either `changeq token set --at <ISO time>` to continue from a known time, or `changeq token reset` and start again with START_AT=snapshot (or now, accepting the gap)',
  );
}

function parseStored(raw: string, key: string): Document {
  let parsed: Document;
  try {
    parsed = EJSON.parse(raw, { relaxed: true }) as Document;
  } catch (error) {
    throw corruptTokenError(key, `not Extended JSON: ${(error as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object') {
    throw corruptTokenError(key, 'not an object');
  }
  if (parsed.v !== POSITION_VERSION) {
    throw corruptTokenError(key, `unknown version ${JSON.stringify(parsed.v)}`);
  }
  return parsed;
}

function decodeMarkerFields(fields: Document, corrupt: (why: string) => UserError): StartMarker {
  const startAt = fields.startAtOperationTime as unknown;
  if (!(startAt instanceof BSON.Timestamp))
    throw corrupt('startAtOperationTime is not a Timestamp');
  return {
    startAt,
    savedAt: fields.savedAt instanceof Date ? fields.savedAt : new Date(0),
    reason: typeof fields.reason === 'string' ? fields.reason : '',
  };
}

function decodePositionFields(
  fields: Document,
  corrupt: (why: string) => UserError,
): StoredPosition {
  const token = fields.token as Document | undefined;
  if (!token || typeof token !== 'object' || !('_data' in token)) throw corrupt('no token._data');
  const data = token._data;
  if (typeof data === 'string' && !/^[0-9A-Fa-f]+$/.test(data)) {
    throw corrupt('token._data is not hex');
  }
  const clusterTime =
    fields.clusterTime instanceof BSON.Timestamp ? fields.clusterTime : tokenClusterTime(token);
  const wallTime = fields.wallTime instanceof Date ? fields.wallTime : null;
  const savedAt = fields.savedAt instanceof Date ? fields.savedAt : new Date(0);
  return { token, clusterTime, wallTime, savedAt };
}

function decodeStartFields(fields: Document, corrupt: (why: string) => UserError): StreamStart {
  return !('token' in fields) && 'startAtOperationTime' in fields
    ? { kind: 'marker', marker: decodeMarkerFields(fields, corrupt) }
    : { kind: 'position', position: decodePositionFields(fields, corrupt) };
}

/** Parses what the token key holds (UserError when corrupt). */
export function decodeStored(raw: string, key: string): StoredStart {
  const corrupt = (why: string) => corruptTokenError(key, why);
  const parsed = parseStored(raw, key);
  if ('lost' in parsed) {
    const lost = parsed.lost as Document | null;
    if (lost === null || typeof lost !== 'object' || typeof lost.had !== 'object') {
      throw corrupt('a lost-position record without what was lost');
    }
    return {
      kind: 'lost',
      record: {
        had: decodeStartFields(lost.had as Document, corrupt),
        found:
          lost.found && typeof lost.found === 'object'
            ? decodeStartFields(lost.found as Document, corrupt)
            : null,
        detectedAt: lost.detectedAt instanceof Date ? lost.detectedAt : new Date(0),
      },
    };
  }
  return decodeStartFields(parsed, corrupt);
}

/** Parses a stored position; throws a UserError naming the key and the ways out when corrupt. */
export function decodePosition(raw: string, key: string): StoredPosition {
  return decodePositionFields(parseStored(raw, key), (why) => corruptTokenError(key, why));
}

/** A position for logs and messages: its time and the start of its token. */
export function describePosition(position: StoredPosition): string {
  const time = positionTime(position);
  const data = tokenData(position.token);
  return `${time ? time.toISOString() : 'unknown time'} (token ${data ? `${data.slice(0, 24)}…` : 'legacy'})`;
}

/** When a position is: its cluster time, else the wall time of its last event. */
export function positionTime(position: StoredPosition): Date | null {
  return (
    position.wallTime ?? (position.clusterTime ? new Date(position.clusterTime.high * 1000) : null)
  );
}

/** A place to start from, for messages: "the resume token at …" or "the start time …". */
export function describeStart(start: StreamStart): string {
  return start.kind === 'position'
    ? `the resume token at ${describePosition(start.position)}`
    : `the start time ${new Date(start.marker.startAt.high * 1000).toISOString()}`;
}

/**
 * The time to replay from after a loss (`changeq token set --at`): the lost place's cluster time,
 * to the second (a replay from it re-reads that whole second: nothing is skipped).
 */
export function replayTime(start: StreamStart): Date | null {
  if (start.kind === 'marker') return new Date(start.marker.startAt.high * 1000);
  const { clusterTime, wallTime } = start.position;
  if (clusterTime) return new Date(clusterTime.high * 1000);
  return wallTime && new Date(Math.floor(wallTime.getTime() / 1000) * 1000);
}

/** What a lost-position record says: "held …, and on <date> nothing" (or an older one). */
export function describeLoss(record: LostRecord): string {
  return `held ${describeStart(record.had)}, and on ${record.detectedAt.toISOString()} ${
    record.found ? `an older one: ${describeStart(record.found)}` : 'nothing'
  }`;
}

/** What a key holds as Redis sees it: its type, and a string's text. */
export interface KeyContent {
  /** Redis' TYPE: none, string, hash, list, set, zset, stream. */
  type: string;
  /** The text of a string; null for any other type. */
  raw: string | null;
}

/** What the token key holds, as operators are shown it: anything, corrupt values included. */
export type TokenKeyState =
  | { kind: 'none' }
  | { kind: 'corrupt'; type: string; raw: string | null; problem: string }
  | StoredStart;

/** Reads the token key's content without ever refusing it (for `changeq token` and `status`). */
export function readTokenKey(content: KeyContent, key: string): TokenKeyState {
  if (content.type === 'none') return { kind: 'none' };
  if (content.type !== 'string' || content.raw === null) {
    return {
      kind: 'corrupt',
      type: content.type,
      raw: null,
      problem: corruptTokenError(key, `it is a Redis ${content.type}, not a string`).problem,
    };
  }
  try {
    return decodeStored(content.raw, key);
  } catch (error) {
    if (!(error instanceof UserError)) throw error;
    return { kind: 'corrupt', type: 'string', raw: content.raw, problem: error.problem };
  }
}

/** The token key's content in a few words ("the resume token at …", "a corrupt token …"). */
export function describeTokenKey(state: TokenKeyState): string {
  switch (state.kind) {
    case 'none':
      return 'nothing';
    case 'corrupt':
      return state.type === 'string' ? 'a corrupt token' : `a Redis ${state.type} (not a token)`;
    case 'lost':
      return `the record of a lost position (${describeStart(state.record.had)})`;
    default:
      return describeStart(state);
  }
}
