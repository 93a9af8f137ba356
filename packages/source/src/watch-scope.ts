import type { Document } from 'mongodb';
import { UserError } from '@changeq/shared';

/** What one ingest watches; always served by ONE change stream. */
export type WatchScope =
  | { kind: 'deployment'; excludeDbs: readonly string[] }
  | { kind: 'database'; db: string }
  | { kind: 'collection'; db: string; coll: string }
  | { kind: 'namespaces'; namespaces: readonly { db: string; coll: string }[] };

/** Databases a deployment-wide stream never forwards. */
export const SYSTEM_DATABASES = ['admin', 'local', 'config'] as const;

const DB_NAME = /^[^/\\. "$*<>:|?]{1,63}$/;
const WATCH_FIX =
  'set WATCH to nothing (the whole deployment), a database name such as "shop", or a comma-separated list of namespaces such as "shop.orders,shop.customers"';

function checkDb(db: string, raw: string): void {
  if (!DB_NAME.test(db)) {
    throw new UserError(`WATCH="${raw}" has an invalid database name "${db}"`, WATCH_FIX);
  }
}

/** Parses WATCH: '' = deployment, 'db' = database, 'db.coll[,db.coll...]' = namespaces. */
export function parseWatch(
  raw: string | undefined,
  excludeDbs: readonly string[] = [],
): WatchScope {
  const value = (raw ?? '').trim();
  if (value === '') return { kind: 'deployment', excludeDbs: [...SYSTEM_DATABASES, ...excludeDbs] };
  const parts = value.split(',').map((part) => part.trim());
  if (parts.some((part) => part === '')) {
    throw new UserError(`WATCH="${raw}" has an empty entry`, WATCH_FIX);
  }
  if (parts.length === 1 && !parts[0]!.includes('.')) {
    checkDb(parts[0]!, value);
    return { kind: 'database', db: parts[0]! };
  }
  const namespaces = parts.map((part) => {
    const dot = part.indexOf('.');
    if (dot < 0) {
      throw new UserError(
        `WATCH="${raw}" mixes the database name "${part}" with namespaces`,
        'list only db.collection namespaces, or give a single database name',
      );
    }
    const db = part.slice(0, dot);
    const coll = part.slice(dot + 1);
    if (db === '') {
      throw new UserError(
        `WATCH="${raw}" has "${part}", with no database before the "."`,
        WATCH_FIX,
      );
    }
    checkDb(db, value);
    if (coll === '') {
      throw new UserError(
        `WATCH="${raw}" has "${part}", with no collection after the "."`,
        `write "${db}" to watch the whole database, or "${db}.<collection>" for one collection`,
      );
    }
    // MongoDB's own rule for collection names (NamespaceString::validCollectionName).
    if (coll.startsWith('.') || coll.includes('\0')) {
      throw new UserError(
        `WATCH="${raw}" names the collection "${coll}" in "${part}", and a collection name cannot start with "." or hold a NUL character`,
        'check for a doubled "." in the namespace (db.collection)',
      );
    }
    if (coll.includes('$') || coll.startsWith('system.')) {
      throw new UserError(
        `WATCH="${raw}" names a collection that cannot be watched ("${coll}")`,
        WATCH_FIX,
      );
    }
    return { db, coll };
  });
  const unique = new Map(namespaces.map((ns) => [`${ns.db}.${ns.coll}`, ns]));
  if (unique.size !== namespaces.length) {
    throw new UserError(`WATCH="${raw}" lists a namespace twice`, 'list each namespace once');
  }
  if (namespaces.length === 1) return { kind: 'collection', ...namespaces[0]! };
  return { kind: 'namespaces', namespaces: [...unique.values()] };
}

/**
 * The server-side `$match` that narrows the one stream to the scope. Renames INTO a watched
 * namespace are kept too (their `to` is watched), so handlers see where documents came from.
 */
export function scopeMatch(scope: WatchScope): Document | null {
  switch (scope.kind) {
    case 'deployment':
      return { 'ns.db': { $nin: [...scope.excludeDbs] } };
    case 'database':
    case 'collection':
      return null;
    case 'namespaces': {
      const byDb = new Map<string, string[]>();
      for (const { db, coll } of scope.namespaces) byDb.set(db, [...(byDb.get(db) ?? []), coll]);
      const clauses: Document[] = [];
      for (const [db, colls] of byDb) {
        clauses.push({ 'ns.db': db, 'ns.coll': { $in: colls } });
        clauses.push({ 'to.db': db, 'to.coll': { $in: colls } });
        // dropDatabase has no ns.coll; it ends every watched collection of that database.
        clauses.push({ 'ns.db': db, operationType: 'dropDatabase' });
      }
      return { $or: clauses };
    }
  }
}

/** The single database a namespaces scope lives in, if any (then a database-level stream suffices). */
export function singleDatabase(scope: WatchScope): string | null {
  if (scope.kind === 'database' || scope.kind === 'collection') return scope.db;
  if (scope.kind === 'namespaces') {
    const dbs = new Set(scope.namespaces.map((ns) => ns.db));
    return dbs.size === 1 ? [...dbs][0]! : null;
  }
  return null;
}

export function describeScope(scope: WatchScope): string {
  switch (scope.kind) {
    case 'deployment':
      return `the whole deployment (except ${scope.excludeDbs.join(', ')})`;
    case 'database':
      return `database ${scope.db}`;
    case 'collection':
      return `collection ${scope.db}.${scope.coll}`;
    case 'namespaces':
      return `namespaces ${scope.namespaces.map((ns) => `${ns.db}.${ns.coll}`).join(', ')}`;
  }
}
