/**
 * What an ingest's token key holds (`ingestKeys().token`): the resume position after which the
 * stream continues, or a start marker (a time to start at) stored by the operator CLI. Extended
 * JSON (canonical), so BSON types such as Timestamp survive.
 */
import { BSON, Timestamp, type Document } from 'mongodb';
import { UserError, tokenClusterTime, tokenData, type ResumeToken } from '@changeq/shared';

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

export function encodePosition(position: StoredPosition): string {
  return EJSON.stringify(
    {
      v: POSITION_VERSION,
      token: position.token,
      clusterTime: position.clusterTime,
      wallTime: position.wallTime,
      savedAt: position.savedAt,
    },
    { relaxed: false },
  );
}

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

/** What the token key holds: a resume position, or a time to start at. */
export type StoredStart =
  { kind: 'position'; position: StoredPosition } | { kind: 'marker'; marker: StartMarker };

export function encodeStartMarker(marker: StartMarker): string {
  return EJSON.stringify(
    {
      v: POSITION_VERSION,
      startAtOperationTime: marker.startAt,
      savedAt: marker.savedAt,
      reason: marker.reason,
    },
    { relaxed: false },
  );
}

function corruptError(key: string, why: string): UserError {
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
    throw corruptError(key, `not Extended JSON: ${(error as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object') throw corruptError(key, 'not an object');
  if (parsed.v !== POSITION_VERSION) {
    throw corruptError(key, `unknown version ${JSON.stringify(parsed.v)}`);
  }
  return parsed;
}

/** Parses what the token key holds: a position or a start marker (UserError when corrupt). */
export function decodeStored(raw: string, key: string): StoredStart {
  const parsed = parseStored(raw, key);
  if (!('token' in parsed) && 'startAtOperationTime' in parsed) {
    const startAt = parsed.startAtOperationTime as unknown;
    if (!(startAt instanceof Timestamp)) {
      throw corruptError(key, 'startAtOperationTime is not a Timestamp');
    }
    return {
      kind: 'marker',
      marker: {
        startAt,
        savedAt: parsed.savedAt instanceof Date ? parsed.savedAt : new Date(0),
        reason: typeof parsed.reason === 'string' ? parsed.reason : '',
      },
    };
  }
  return { kind: 'position', position: decodePosition(raw, key) };
}

/** Parses a stored position; throws a UserError naming the key and the ways out when corrupt. */
export function decodePosition(raw: string, key: string): StoredPosition {
  const corrupt = (why: string) => corruptError(key, why);
  const parsed = parseStored(raw, key);
  const token = parsed.token as Document | undefined;
  if (!token || typeof token !== 'object' || !('_data' in token)) throw corrupt('no token._data');
  const data = token._data;
  if (typeof data === 'string' && !/^[0-9A-Fa-f]+$/.test(data))
    throw corrupt('token._data is not hex');
  const clusterTime =
    parsed.clusterTime instanceof Timestamp ? parsed.clusterTime : tokenClusterTime(token);
  const wallTime = parsed.wallTime instanceof Date ? parsed.wallTime : null;
  const savedAt = parsed.savedAt instanceof Date ? parsed.savedAt : new Date(0);
  return { token, clusterTime, wallTime, savedAt };
}

/** A position for logs and messages: its time and the start of its token. */
export function describePosition(position: StoredPosition): string {
  const time =
    position.wallTime ?? (position.clusterTime ? new Date(position.clusterTime.high * 1000) : null);
  const data = tokenData(position.token);
  return `${time ? time.toISOString() : 'unknown time'} (token ${data ? `${data.slice(0, 24)}…` : 'legacy'})`;
}
