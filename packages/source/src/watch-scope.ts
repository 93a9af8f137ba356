import type { Document } from 'mongodb';
import { UserError } from '@changeq/shared';
import {
  describePattern,
  matches,
  parsePattern,
  patternClauses,
  splitEntries,
  type NamespacePattern,
} from './namespace-patterns.js';

/**
 * What one ingest watches; always served by ONE change stream. `exclude` (EXCLUDE) takes
 * namespaces out of a deployment, a database or patterns.
 */
export type WatchScope =
  | { kind: 'deployment'; excludeDbs: readonly string[]; exclude?: readonly NamespacePattern[] }
  | { kind: 'database'; db: string; exclude?: readonly NamespacePattern[] }
  | { kind: 'collection'; db: string; coll: string }
  | { kind: 'namespaces'; namespaces: readonly { db: string; coll: string }[] }
  | {
      kind: 'patterns';
      patterns: readonly NamespacePattern[];
      excludeDbs: readonly string[];
      exclude?: readonly NamespacePattern[];
    };

/** Databases a deployment-wide stream never forwards. */
export const SYSTEM_DATABASES = ['admin', 'local', 'config'] as const;

const DB_NAME = /^[^/\\. "$*<>:|?]{1,63}$/;
const WATCH_FIX =
  'set WATCH to nothing (the whole deployment), a database name such as "shop", or a comma-separated list of namespaces and patterns such as "shop.orders,shop.customers", "shop.*", "*.orders" or /^shop\\.orders_/';

function checkDb(db: string, raw: string): void {
  if (!DB_NAME.test(db)) {
    throw new UserError(`WATCH="${raw}" has an invalid database name "${db}"`, WATCH_FIX);
  }
}

/**
 * Parses WATCH: '' = deployment, 'db' = database, 'db.coll[,db.coll...]' = namespaces; with any
 * of `db.*`, `*.coll` or `/regex/` among the entries, patterns. EXCLUDE (`exclude`, parsed by
 * parseExclude) applies to a deployment, a database or patterns.
 */
export function parseWatch(
  raw: string | undefined,
  excludeDbs: readonly string[] = [],
  exclude: readonly NamespacePattern[] = [],
): WatchScope {
  const value = (raw ?? '').trim();
  const withExclude = exclude.length > 0 ? { exclude } : {};
  if (value === '') {
    return { kind: 'deployment', excludeDbs: [...SYSTEM_DATABASES, ...excludeDbs], ...withExclude };
  }
  const parts = splitEntries(value);
  if (parts.some((part) => part === '')) {
    throw new UserError(`WATCH="${raw}" has an empty entry`, WATCH_FIX);
  }
  const patterns = parts.map((part) => parsePattern(part));
  const refused = patterns.find((pattern) => typeof pattern === 'string');
  if (typeof refused === 'string') throw new UserError(`WATCH ${refused}`, WATCH_FIX);
  if (patterns.some((pattern) => pattern !== undefined)) {
    const all = parts.map(
      (part, i): NamespacePattern =>
        (patterns[i] as NamespacePattern | undefined) ?? {
          kind: 'exact' as const,
          ...namespace(part, raw, value),
        },
    );
    for (const pattern of all) {
      if (pattern.kind === 'exact' || pattern.kind === 'database') checkDb(pattern.db, value);
    }
    return {
      kind: 'patterns',
      patterns: all,
      excludeDbs: [...SYSTEM_DATABASES, ...excludeDbs],
      ...withExclude,
    };
  }
  if (parts.length === 1 && !parts[0]!.includes('.')) {
    checkDb(parts[0]!, value);
    return { kind: 'database', db: parts[0]!, ...withExclude };
  }
  if (exclude.length > 0) {
    throw new UserError(
      `EXCLUDE is set, but WATCH="${raw}" lists namespaces: there is nothing to exclude from`,
      'remove EXCLUDE, or watch a database, the deployment or patterns (shop.*)',
    );
  }
  const namespaces = parts.map((part) => namespace(part, raw, value));
  const unique = new Map(namespaces.map((ns) => [`${ns.db}.${ns.coll}`, ns]));
  if (unique.size !== namespaces.length) {
    throw new UserError(`WATCH="${raw}" lists a namespace twice`, 'list each namespace once');
  }
  if (namespaces.length === 1) return { kind: 'collection', ...namespaces[0]! };
  return { kind: 'namespaces', namespaces: [...unique.values()] };
}

/** One `db.coll` entry of WATCH, checked as MongoDB names namespaces. */
function namespace(
  part: string,
  raw: string | undefined,
  value: string,
): { db: string; coll: string } {
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
    throw new UserError(`WATCH="${raw}" has "${part}", with no database before the "."`, WATCH_FIX);
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
}

/**
 * The server-side `$match` that narrows the one stream to the scope. Renames INTO a watched
 * namespace are kept too (their `to` is watched), so handlers see where documents came from.
 */
export function scopeMatch(scope: WatchScope): Document | null {
  const match = includeMatch(scope);
  const exclude = excludeOf(scope);
  if (exclude.length === 0) return match;
  // An excluded namespace's events, renames out of it included (renames into it are not).
  const excluded = { $nor: exclude.flatMap((pattern) => patternClauses(pattern, false)) };
  return match === null ? excluded : { $and: [match, excluded] };
}

function includeMatch(scope: WatchScope): Document | null {
  switch (scope.kind) {
    case 'deployment':
      return { 'ns.db': { $nin: [...scope.excludeDbs] } };
    case 'patterns':
      return {
        $and: [
          { 'ns.db': { $nin: [...scope.excludeDbs] } },
          { $or: scope.patterns.flatMap((pattern) => patternClauses(pattern, true)) },
        ],
      };
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
  if (scope.kind === 'patterns') {
    const dbs = new Set(
      scope.patterns.map((p) => (p.kind === 'exact' || p.kind === 'database' ? p.db : null)),
    );
    const [db] = [...dbs];
    return dbs.size === 1 && db !== null && db !== undefined ? db : null;
  }
  return null;
}

/** The namespaces EXCLUDE takes out of the scope (none for a list of namespaces). */
function excludeOf(scope: WatchScope): readonly NamespacePattern[] {
  return ('exclude' in scope && scope.exclude) || [];
}

/** Whether the namespace is in the scope (for a snapshot copy, which lists collections). */
export function inScope(scope: WatchScope, db: string, coll: string): boolean {
  const exclude = excludeOf(scope);
  if (exclude.some((pattern) => matches(pattern, db, coll))) return false;
  switch (scope.kind) {
    case 'deployment':
      return !scope.excludeDbs.includes(db);
    case 'database':
      return scope.db === db;
    case 'collection':
      return scope.db === db && scope.coll === coll;
    case 'namespaces':
      return scope.namespaces.some((ns) => ns.db === db && ns.coll === coll);
    case 'patterns':
      return (
        !scope.excludeDbs.includes(db) &&
        scope.patterns.some((pattern) => matches(pattern, db, coll))
      );
  }
}

/** Parses EXCLUDE: namespaces and patterns (`db.coll`, `db.*`, `*.coll`, `/regex/`) to leave out. */
export function parseExclude(raw: string | undefined): NamespacePattern[] {
  const value = (raw ?? '').trim();
  if (value === '') return [];
  return splitEntries(value).map((entry) => {
    const fix =
      'list namespaces and patterns to leave out, e.g. EXCLUDE="shop.audit,*.tmp,/^logs\\./"';
    if (entry === '') throw new UserError(`EXCLUDE="${raw}" has an empty entry`, fix);
    const pattern = parsePattern(entry);
    if (typeof pattern === 'string') throw new UserError(`EXCLUDE ${pattern}`, fix);
    if (pattern !== undefined) return pattern;
    const dot = entry.indexOf('.');
    if (dot <= 0 || dot === entry.length - 1) {
      throw new UserError(
        `EXCLUDE="${raw}" has "${entry}", which is not db.coll`,
        `${fix}; for a whole database, write "${entry.replace(/\.$/, '')}.*" (or use EXCLUDE_DBS)`,
      );
    }
    return { kind: 'exact', db: entry.slice(0, dot), coll: entry.slice(dot + 1) };
  });
}

export function describeScope(scope: WatchScope): string {
  const exclude = excludeOf(scope);
  const base = describeIncluded(scope);
  return exclude.length > 0
    ? `${base}, excluding ${exclude.map(describePattern).join(', ')}`
    : base;
}

function describeIncluded(scope: WatchScope): string {
  switch (scope.kind) {
    case 'patterns':
      return `namespaces matching ${scope.patterns.map(describePattern).join(', ')}`;
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
