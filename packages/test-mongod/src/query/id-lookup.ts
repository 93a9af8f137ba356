// Which `_id` values a filter allows, so commands can fetch those documents from the `_id` index
// instead of scanning the collection. The answer is a set of canonical keys (bson/canonical.ts)
// that every matching document's `_id` has; callers still apply the whole filter to what they
// fetch, so this only has to be a superset, never exact. Anything it does not understand
// (ranges, regexes, `$or`, `_id.x` paths, unusual BSON types) answers "no restriction".
import { BSONRegExp } from 'bson';
import { canonicalKey } from '../bson/canonical.js';
import { isPlainObject, typeName } from '../bson/types.js';
import type { Doc } from '../bson/types.js';

/**
 * Types whose query equality (bson/compare.ts) and canonical `_id` key agree: equal values have
 * equal keys. Others (regexes match strings, code, pointers) fall back to a scan.
 */
const KEYED_TYPES = new Set([
  'null',
  'int',
  'double',
  'long',
  'decimal',
  'string',
  'symbol',
  'objectId',
  'bool',
  'date',
  'timestamp',
  'binData',
  'minKey',
  'maxKey',
]);

function keyable(v: unknown): boolean {
  if (Array.isArray(v)) return v.every(keyable);
  if (isPlainObject(v)) return Object.values(v).every((x) => x === undefined || keyable(x));
  return KEYED_TYPES.has(typeName(v));
}

/** An equality operand, or undefined when it is not one we can key. */
function equalityKey(v: unknown): string | undefined {
  if (v instanceof RegExp || v instanceof BSONRegExp || !keyable(v)) return undefined;
  return canonicalKey(v);
}

function isOperatorObject(v: unknown): v is Doc {
  if (!isPlainObject(v)) return false;
  const first = Object.keys(v)[0];
  return first !== undefined && first.startsWith('$') && !['$ref', '$id', '$db'].includes(first);
}

/** The keys one `_id: <condition>` allows. */
function keysOfCondition(cond: unknown): Set<string> | undefined {
  if (!isOperatorObject(cond)) {
    // An array operand also matches arrays containing it; `_id` is never an array, so the key
    // of the array itself (which no stored `_id` has) is the right, empty, answer.
    const k = equalityKey(cond);
    return k === undefined ? undefined : new Set([k]);
  }
  if ('$eq' in cond) {
    const k = equalityKey(cond.$eq);
    if (k !== undefined) return new Set([k]);
  }
  const inList = cond.$in;
  if (Array.isArray(inList)) {
    const keys = new Set<string>();
    for (const e of inList) {
      const k = equalityKey(e);
      if (k === undefined) return undefined;
      keys.add(k);
    }
    return keys;
  }
  return undefined;
}

function intersect(
  a: Set<string> | undefined,
  b: Set<string> | undefined,
): Set<string> | undefined {
  if (!a) return b;
  if (!b) return a;
  const out = new Set<string>();
  for (const k of a) if (b.has(k)) out.add(k);
  return out;
}

/**
 * Canonical `_id` keys that every document matching `filter` has, from top-level `_id`
 * conditions (`{_id: v}`, `{_id: {$eq: v}}`, `{_id: {$in: [...]}}`) and `$and` members; or
 * undefined when the filter does not limit `_id` to a finite set.
 */
export function idKeys(filter: Doc): Set<string> | undefined {
  let keys: Set<string> | undefined;
  if ('_id' in filter) keys = keysOfCondition(filter._id);
  const and = filter.$and;
  if (Array.isArray(and)) {
    for (const member of and) if (isPlainObject(member)) keys = intersect(keys, idKeys(member));
  }
  return keys;
}
