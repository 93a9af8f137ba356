import type { Document, Timestamp } from 'mongodb';
import { BSON } from './bson.js';

/** A change stream resume token as the server hands it out (`{ _data: '82…' }` since 4.2). */
export type ResumeToken = Document;

/** The `_data` string of a token, or null for legacy (BinData) tokens. */
export function tokenData(token: ResumeToken): string | null {
  const data = (token as { _data?: unknown })._data;
  return typeof data === 'string' ? data : null;
}

/**
 * Resume tokens' `_data` is a hex KeyString whose byte order is the oplog order, so comparing
 * the strings compares positions (MongoDB documents tokens as sortable since 4.2). Used only to
 * recognise events already committed to a queue after a crash.
 */
export function compareTokenData(a: string, b: string): number {
  const x = a.toUpperCase();
  const y = b.toUpperCase();
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * The cluster time a token points at, when its KeyString starts with a Timestamp (type byte
 * 0x82 followed by seconds and increment, big-endian). Best effort, for display and lag only.
 */
export function tokenClusterTime(token: ResumeToken): Timestamp | null {
  const data = tokenData(token);
  if (!data || data.length < 18 || data.slice(0, 2) !== '82') return null;
  const t = Number.parseInt(data.slice(2, 10), 16);
  const i = Number.parseInt(data.slice(10, 18), 16);
  if (!Number.isFinite(t) || !Number.isFinite(i)) return null;
  return new BSON.Timestamp({ t, i });
}
