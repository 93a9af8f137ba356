/**
 * Namespace patterns for WATCH and EXCLUDE: `db.coll`, `db.*`, `*.coll` and regular expressions
 * `/…/flags` over the whole namespace `db.coll`. The stream filters them on the server (`$match`,
 * with `$regexMatch` for expressions); a snapshot copy lists the collections and matches them here.
 */
import type { Document } from 'mongodb';

export type NamespacePattern =
  | { kind: 'exact'; db: string; coll: string }
  | { kind: 'database'; db: string }
  | { kind: 'collection'; coll: string }
  | { kind: 'regex'; source: string; flags: string };

/** Splits a list at commas outside `/…/` (a regular expression may hold commas). */
export function splitEntries(raw: string): string[] {
  const entries: string[] = [];
  let current = '';
  let inRegex = false;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (inRegex && c === '\\') {
      current += c + (raw[i + 1] ?? '');
      i++;
      continue;
    }
    if (c === '/' && (inRegex || current.trim() === '')) inRegex = !inRegex;
    if (c === ',' && !inRegex) {
      entries.push(current.trim());
      current = '';
      continue;
    }
    current += c;
  }
  entries.push(current.trim());
  return entries;
}

/**
 * The pattern an entry spells, or a string saying why it is not one; undefined when the entry
 * holds no pattern syntax (a plain database or namespace, for the caller to check).
 */
export function parsePattern(entry: string): NamespacePattern | string | undefined {
  const regex = /^\/(.*)\/([a-z]*)$/s.exec(entry);
  if (regex) {
    const [, source, flags] = regex as unknown as [string, string, string];
    if (source === '') return `"${entry}" is an empty regular expression`;
    const unknown = flags.replace(/[imsx]/g, '');
    if (unknown !== '') return `"${entry}" has the flag "${unknown}" (MongoDB takes i, m, s and x)`;
    try {
      new RegExp(jsSource(source, flags), jsFlags(flags));
    } catch (error) {
      return `"${entry}" is not a regular expression (${(error as Error).message})`;
    }
    return { kind: 'regex', source, flags };
  }
  if (entry.startsWith('/')) return `"${entry}" opens a regular expression that it does not close`;
  if (!entry.includes('*')) return undefined;
  const dot = entry.indexOf('.');
  const db = dot < 0 ? entry : entry.slice(0, dot);
  const coll = dot < 0 ? '' : entry.slice(dot + 1);
  if (db !== '*' && coll === '*' && !db.includes('*')) return { kind: 'database', db };
  if (db === '*' && coll !== '' && !coll.includes('*')) return { kind: 'collection', coll };
  return `"${entry}" uses "*" where changeq takes only "db.*" and "*.coll"; write a regular expression for the rest, e.g. /^shop\\.orders_/`;
}

/** Whether the namespace `db.coll` matches. */
export function matches(pattern: NamespacePattern, db: string, coll: string): boolean {
  switch (pattern.kind) {
    case 'exact':
      return pattern.db === db && pattern.coll === coll;
    case 'database':
      return pattern.db === db;
    case 'collection':
      return pattern.coll === coll;
    case 'regex':
      return compiled(pattern).test(`${db}.${coll}`);
  }
}

// A pattern is plain data (it crosses to the reader thread); its RegExp is made once per pattern.
const regexes = new WeakMap<NamespacePattern, RegExp>();
function compiled(pattern: NamespacePattern & { kind: 'regex' }): RegExp {
  let regex = regexes.get(pattern);
  if (regex === undefined) {
    regex = new RegExp(jsSource(pattern.source, pattern.flags), jsFlags(pattern.flags));
    regexes.set(pattern, regex);
  }
  return regex;
}

/**
 * The `$match` clauses that select a pattern's events on the server. With `to`, renames INTO a
 * matching namespace are selected too; an exact namespace also takes its database's
 * `dropDatabase` (it has no `ns.coll`).
 */
export function patternClauses(pattern: NamespacePattern, to: boolean): Document[] {
  const on = (field: 'ns' | 'to'): Document | null => {
    switch (pattern.kind) {
      case 'exact':
        return { [`${field}.db`]: pattern.db, [`${field}.coll`]: pattern.coll };
      case 'database':
        return { [`${field}.db`]: pattern.db };
      case 'collection':
        return { [`${field}.coll`]: pattern.coll };
      case 'regex':
        return {
          $expr: {
            $regexMatch: {
              input: { $concat: [`$${field}.db`, '.', `$${field}.coll`] },
              regex: pattern.source,
              options: pattern.flags,
            },
          },
        };
    }
  };
  const clauses = [on('ns')!];
  if (to) clauses.push(on('to')!);
  if (pattern.kind === 'exact')
    clauses.push({ 'ns.db': pattern.db, operationType: 'dropDatabase' });
  return clauses;
}

export function describePattern(pattern: NamespacePattern): string {
  switch (pattern.kind) {
    case 'exact':
      return `${pattern.db}.${pattern.coll}`;
    case 'database':
      return `${pattern.db}.*`;
    case 'collection':
      return `*.${pattern.coll}`;
    case 'regex':
      return `/${pattern.source}/${pattern.flags}`;
  }
}

// JavaScript has no x flag: PCRE's extended mode ignores whitespace and # comments.
function jsSource(source: string, flags: string): string {
  return flags.includes('x') ? source.replace(/#.*$/gm, '').replace(/\s+/g, '') : source;
}

function jsFlags(flags: string): string {
  return flags.replace('x', '');
}
