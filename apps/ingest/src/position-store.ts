import type { Redis } from 'ioredis';
import { BSON, Timestamp, type Document } from 'mongodb';

const { EJSON } = BSON;
import { UserError } from '@changeq/shared';
import { ingestKeys } from '@changeq/store';
import { tokenClusterTime, type ResumeToken } from './resume-token.js';

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

/** The ingest's resume position and snapshot progress in Redis. */
export class PositionStore {
  readonly keys: ReturnType<typeof ingestKeys>;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    ingestId: string,
  ) {
    this.keys = ingestKeys(prefix, ingestId);
  }

  async load(): Promise<StoredPosition | null> {
    const stored = await this.loadStart();
    return stored?.kind === 'position' ? stored.position : null;
  }

  /** The stored position or start marker, if any. */
  async loadStart(): Promise<StoredStart | null> {
    const raw = await this.redis.get(this.keys.token);
    return raw === null ? null : decodeStored(raw, this.keys.token);
  }

  /** Makes the next start begin at `startAt` (replacing any stored token). */
  async saveStartMarker(marker: StartMarker): Promise<void> {
    await this.redis.set(this.keys.token, encodeStartMarker(marker));
  }

  async save(position: StoredPosition): Promise<void> {
    await this.redis.set(this.keys.token, encodePosition(position));
  }

  async clear(): Promise<void> {
    await this.redis.del(this.keys.token);
  }
}
