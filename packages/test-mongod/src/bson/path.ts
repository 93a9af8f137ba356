// Dotted-path helpers with MongoDB's array semantics.
import { isPlainObject } from './types.js';
import type { Doc } from './types.js';

export function isIndex(part: string): boolean {
  return /^(0|[1-9]\d*)$/.test(part);
}

/**
 * Every value a dotted path reaches, traversing arrays as queries do: a non-numeric component
 * applied to an array continues into each embedded document; a numeric one indexes the array.
 * Missing values are reported as `undefined` so `{a: null}` / `$exists` can see them.
 */
export function collectLeaves(
  value: unknown,
  parts: readonly string[],
  i = 0,
  out: unknown[] = [],
): unknown[] {
  if (i === parts.length) {
    out.push(value);
    return out;
  }
  const part = parts[i] as string;
  if (Array.isArray(value)) {
    const before = out.length;
    if (isIndex(part)) {
      const idx = Number(part);
      if (idx < value.length) collectLeaves(value[idx], parts, i + 1, out);
    }
    for (const e of value) {
      if (isPlainObject(e)) collectLeaves(e, parts, i, out);
    }
    if (out.length === before) out.push(undefined);
    return out;
  }
  if (isPlainObject(value)) {
    return collectLeaves(value[part], parts, i + 1, out);
  }
  out.push(undefined);
  return out;
}

/** Plain lookup without array traversal except numeric indexes (used for projections of events). */
export function getPath(doc: unknown, path: string): unknown {
  let cur: unknown = doc;
  for (const part of path.split('.')) {
    if (Array.isArray(cur) && isIndex(part)) cur = cur[Number(part)];
    else if (isPlainObject(cur)) cur = cur[part];
    else return undefined;
  }
  return cur;
}

export function setPath(doc: Doc, path: string, value: unknown): void {
  const parts = path.split('.');
  let cur: Doc = doc;
  for (let i = 0; i < parts.length - 1; i++) {
    const part = parts[i] as string;
    let next = cur[part];
    if (!isPlainObject(next)) {
      next = {};
      cur[part] = next;
    }
    cur = next as Doc;
  }
  cur[parts[parts.length - 1] as string] = value;
}

export function deletePath(doc: Doc, path: string): void {
  const parts = path.split('.');
  let cur: unknown = doc;
  for (let i = 0; i < parts.length - 1; i++) {
    if (!isPlainObject(cur)) return;
    cur = cur[parts[i] as string];
  }
  if (isPlainObject(cur)) delete cur[parts[parts.length - 1] as string];
}
