// Update operators ($set, $inc, $push, ...) applied copy-on-write to a stored document, recording
// which paths changed so that change events can carry MongoDB's `updateDescription`.
import { Decimal128, Double, Int32, Long, Timestamp } from 'bson';
import { compareValues, identical, valuesEqual } from '../bson/compare.js';
import { getPath, isIndex } from '../bson/path.js';
import { deepClone, isNumeric, isPlainObject, toNumber, typeName } from '../bson/types.js';
import type { Doc } from '../bson/types.js';
import { badValue, MongoServerError } from '../errors.js';
import { compileFilter } from '../query/match.js';
import { compileSort } from '../query/sort.js';

export interface UpdateDescription {
  updatedFields: Doc;
  removedFields: string[];
  truncatedArrays: { field: string; newSize: number }[];
  /**
   * Set when the paths cannot be told apart by walking the post-image (pipeline updates, whose
   * field names may contain dots); otherwise derived from it (update/disambiguate.ts).
   */
  disambiguatedPaths?: Doc;
}

export interface UpdateResult {
  doc: Doc;
  modified: boolean;
  description: UpdateDescription;
}

const SUPPORTED = new Set([
  '$set',
  '$unset',
  '$inc',
  '$mul',
  '$min',
  '$max',
  '$push',
  '$addToSet',
  '$pull',
  '$pullAll',
  '$pop',
  '$rename',
  '$setOnInsert',
  '$currentDate',
]);

export function isOperatorUpdate(update: Doc): boolean {
  const keys = Object.keys(update);
  return keys.length > 0 && (keys[0] as string).startsWith('$');
}

class Tracker {
  readonly updated = new Set<string>();
  readonly removed = new Set<string>();
  readonly wholeArrays = new Set<string>();
  set(path: string): void {
    this.updated.add(path);
    this.removed.delete(path);
  }
  unset(path: string): void {
    this.removed.add(path);
    this.updated.delete(path);
  }
}

function pathNotViable(part: string, container: unknown): MongoServerError {
  return new MongoServerError(
    28,
    `Cannot create field '${part}' in element {${typeName(container)}: ...}`,
  );
}

/**
 * Walk to the parent of `path`, creating missing documents when `create` is set.
 * Returns the parent container, the last key, and the shortest prefix that had to be created.
 */
function resolveParent(
  doc: Doc,
  parts: string[],
  create: boolean,
): { parent: Doc | unknown[]; key: string; created?: string } | undefined {
  let cur: Doc | unknown[] = doc;
  let created: string | undefined;
  for (let i = 0; i < parts.length - 1; i++) {
    const part = parts[i] as string;
    let next: unknown;
    if (Array.isArray(cur)) {
      if (!isIndex(part)) throw pathNotViable(part, cur);
      next = cur[Number(part)];
    } else next = cur[part];
    if (next === undefined || next === null) {
      if (!create) return undefined;
      if (next === null) throw pathNotViable(parts[i + 1] as string, null);
      next = {};
      if (Array.isArray(cur)) padAssign(cur, Number(part), next);
      else cur[part] = next;
      created ??= parts.slice(0, i + 1).join('.');
    } else if (!isPlainObject(next) && !Array.isArray(next)) {
      if (!create) return undefined;
      throw pathNotViable(parts[i + 1] as string, next);
    }
    cur = next as Doc | unknown[];
  }
  return { parent: cur, key: parts[parts.length - 1] as string, created };
}

function padAssign(arr: unknown[], idx: number, value: unknown): void {
  while (arr.length < idx) arr.push(null);
  arr[idx] = value;
}

function readChild(parent: Doc | unknown[], key: string): unknown {
  if (Array.isArray(parent)) return isIndex(key) ? parent[Number(key)] : undefined;
  return parent[key];
}

function writeChild(parent: Doc | unknown[], key: string, value: unknown): void {
  if (Array.isArray(parent)) {
    if (!isIndex(key)) throw pathNotViable(key, parent);
    padAssign(parent, Number(key), value);
  } else parent[key] = value;
}

function setValue(doc: Doc, path: string, value: unknown, t: Tracker): void {
  const parts = path.split('.');
  const r = resolveParent(doc, parts, true);
  if (!r) return;
  const old = readChild(r.parent, r.key);
  if (old !== undefined && identical(old, value)) return;
  writeChild(r.parent, r.key, value);
  t.set(r.created ?? path);
}

function addNumbers(a: unknown, b: unknown, op: '$inc' | '$mul'): unknown {
  const ta = typeName(a);
  const tb = typeName(b);
  const na = toNumber(a);
  const nb = toNumber(b);
  if (ta === 'decimal' || tb === 'decimal') {
    return Decimal128.fromString(String(op === '$inc' ? na + nb : na * nb));
  }
  if (ta === 'double' || tb === 'double') return new Double(op === '$inc' ? na + nb : na * nb);
  if (ta === 'long' || tb === 'long') {
    const la = Long.fromString(
      String(typeof a === 'object' && ta === 'long' ? (a as Long).toString() : Math.trunc(na)),
    );
    const lb = Long.fromString(
      String(typeof b === 'object' && tb === 'long' ? (b as Long).toString() : Math.trunc(nb)),
    );
    return op === '$inc' ? la.add(lb) : la.multiply(lb);
  }
  const r = op === '$inc' ? na + nb : na * nb;
  if (r >= -(2 ** 31) && r < 2 ** 31) return new Int32(r);
  return Long.fromNumber(r);
}

function fieldsOf(op: string, operand: unknown): Doc {
  if (!isPlainObject(operand)) {
    throw new MongoServerError(
      9,
      `Modifiers operate on fields but we found type ${typeName(operand)} instead. For example: {$mod: {<field>: ...}} not {${op}: ${typeName(operand)}}`,
    );
  }
  return operand;
}

function checkConflicts(paths: string[]): void {
  const sorted = [...paths].sort();
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1] as string;
    const b = sorted[i] as string;
    if (a === b || b.startsWith(`${a}.`)) {
      throw new MongoServerError(40, `Updating the path '${b}' would create a conflict at '${a}'`);
    }
  }
}

function validatePath(path: string): void {
  if (path === '') throw new MongoServerError(56, `An empty update path is not valid.`);
  if (path.split('.').some((p) => p === '')) {
    throw new MongoServerError(
      56,
      `The update path '${path}' contains an empty field name, which is not allowed.`,
    );
  }
  if (/(^|\.)\$/.test(path)) {
    throw new MongoServerError(
      2,
      `positional or $[] update path '${path}' is not supported by changeq test-mongod`,
      {
        extra: { unsupported: true },
      },
    );
  }
}

function pullMatcher(cond: unknown): (v: unknown) => boolean {
  if (isPlainObject(cond)) {
    const keys = Object.keys(cond);
    if (
      keys.length > 0 &&
      keys.every((k) => k.startsWith('$') && k !== '$and' && k !== '$or' && k !== '$nor')
    ) {
      const p = compileFilter({ v: cond });
      return (v) => p({ v });
    }
    const p = compileFilter(cond);
    return (v) => isPlainObject(v) && p(v);
  }
  return (v) => valuesEqual(v, cond) && (typeName(v) !== 'array') === (typeName(cond) !== 'array');
}

export function applyUpdate(
  original: Doc,
  update: Doc,
  options: { inserting: boolean; now?: () => Timestamp },
): UpdateResult {
  const doc = deepClone(original);
  const t = new Tracker();
  const allPaths: string[] = [];
  for (const op of Object.keys(update)) {
    if (!op.startsWith('$')) {
      throw new MongoServerError(
        9,
        `Unknown modifier: ${op}. Expected a valid update modifier or pipeline-style update specified as an array`,
      );
    }
    if (!SUPPORTED.has(op)) {
      if (['$bit'].includes(op)) {
        throw new MongoServerError(2, `${op} is not supported by changeq test-mongod`, {
          extra: { unsupported: true },
        });
      }
      throw new MongoServerError(
        9,
        `Unknown modifier: ${op}. Expected a valid update modifier or pipeline-style update specified as an array`,
      );
    }
    const fields = fieldsOf(op, update[op]);
    for (const path of Object.keys(fields)) {
      validatePath(path);
      allPaths.push(path);
      if (op === '$rename') {
        const to = fields[path];
        if (typeof to !== 'string')
          throw badValue(`The 'to' field for $rename must be a string: ${path}: ${String(to)}`);
        validatePath(to);
        allPaths.push(to);
      }
    }
  }
  checkConflicts(allPaths);

  for (const op of Object.keys(update)) {
    const fields = update[op] as Doc;
    for (const path of Object.keys(fields)) {
      const arg = fields[path];
      const parts = path.split('.');
      if (path === '_id' || path.startsWith('_id.')) {
        if (op !== '$set' && op !== '$setOnInsert') {
          if (!(op === '$unset' && original._id === undefined)) {
            throw new MongoServerError(
              66,
              `Performing an update on the path '_id' would modify the immutable field '_id'`,
            );
          }
        }
      }
      switch (op) {
        case '$set':
          setValue(doc, path, deepClone(arg), t);
          break;
        case '$setOnInsert':
          if (options.inserting) setValue(doc, path, deepClone(arg), t);
          break;
        case '$unset': {
          const r = resolveParent(doc, parts, false);
          if (!r) break;
          const old = readChild(r.parent, r.key);
          if (old === undefined) break;
          if (Array.isArray(r.parent)) r.parent[Number(r.key)] = null;
          else delete r.parent[r.key];
          if (Array.isArray(r.parent)) t.set(path);
          else t.unset(path);
          break;
        }
        case '$inc':
        case '$mul': {
          if (!isNumeric(arg)) {
            throw new MongoServerError(
              14,
              `Cannot ${op === '$inc' ? 'increment' : 'multiply'} with non-numeric argument: {${path}: ${String(arg)}}`,
            );
          }
          const old = getPath(doc, path);
          if (old !== undefined && !isNumeric(old)) {
            throw new MongoServerError(
              14,
              `Cannot apply ${op} to a value of non-numeric type. {_id: ${String(original._id)}} has the field '${parts[parts.length - 1]}' of non-numeric type ${typeName(old)}`,
            );
          }
          const base = old === undefined ? (op === '$inc' ? new Int32(0) : new Int32(0)) : old;
          const next = old === undefined && op === '$inc' ? arg : addNumbers(base, arg, op);
          setValue(doc, path, next, t);
          break;
        }
        case '$min':
        case '$max': {
          const old = getPath(doc, path);
          const c = old === undefined ? 0 : compareValues(arg, old);
          if (old === undefined || (op === '$min' ? c < 0 : c > 0))
            setValue(doc, path, deepClone(arg), t);
          break;
        }
        case '$currentDate': {
          const wantTs = isPlainObject(arg) && arg.$type === 'timestamp';
          const value = wantTs
            ? (options.now?.() ?? new Timestamp({ t: Math.floor(Date.now() / 1000), i: 1 }))
            : new Date();
          setValue(doc, path, value, t);
          break;
        }
        case '$push':
        case '$addToSet': {
          const old = getPath(doc, path);
          if (old !== undefined && !Array.isArray(old)) {
            throw new MongoServerError(
              2,
              `The field '${path}' must be an array but is of type ${typeName(old)} in document {_id: ${String(original._id)}}`,
            );
          }
          const isEach = isPlainObject(arg) && '$each' in arg;
          const mods = isEach ? (arg as Doc) : {};
          let items: unknown[];
          if (isEach) {
            if (!Array.isArray(mods.$each))
              throw badValue(
                `The argument to $each in ${op} must be an array but it was of type: ${typeName(mods.$each)}`,
              );
            items = mods.$each.map((x) => deepClone(x));
            for (const k of Object.keys(mods)) {
              if (
                k !== '$each' &&
                !(op === '$push' && (k === '$slice' || k === '$sort' || k === '$position'))
              ) {
                throw badValue(`Unrecognized clause in ${op}: ${k}`);
              }
            }
          } else items = [deepClone(arg)];
          const arr = old === undefined ? [] : [...old];
          const oldLen = arr.length;
          let whole = old === undefined;
          if (op === '$addToSet') {
            for (const it of items) if (!arr.some((e) => valuesEqual(e, it))) arr.push(it);
          } else {
            if (mods.$position !== undefined) {
              let pos = toNumber(mods.$position);
              if (pos < 0) pos = Math.max(0, arr.length + pos);
              arr.splice(Math.min(pos, arr.length), 0, ...items);
              whole = true;
            } else arr.push(...items);
            if (mods.$sort !== undefined) {
              const s = mods.$sort;
              const cmp = isPlainObject(s) ? compileSort(s) : undefined;
              const dir = isPlainObject(s) ? 1 : toNumber(s);
              arr.sort((a, b) => (cmp ? cmp(a as Doc, b as Doc) : compareValues(a, b) * dir));
              whole = true;
            }
            if (mods.$slice !== undefined) {
              const n = toNumber(mods.$slice);
              const sliced = n >= 0 ? arr.slice(0, n) : arr.slice(n);
              arr.length = 0;
              arr.push(...sliced);
              whole = true;
            }
          }
          if (arr.length === oldLen && !whole && old !== undefined) break;
          if (whole) setValue(doc, path, arr, t);
          else {
            const r = resolveParent(doc, parts, true);
            if (!r) break;
            writeChild(r.parent, r.key, arr);
            for (let i = oldLen; i < arr.length; i++) t.set(`${path}.${i}`);
          }
          break;
        }
        case '$pull':
        case '$pullAll': {
          const old = getPath(doc, path);
          if (old === undefined) break;
          if (!Array.isArray(old)) throw badValue(`Cannot apply ${op} to a non-array value`);
          let keep: unknown[];
          if (op === '$pullAll') {
            if (!Array.isArray(arg)) throw badValue('$pullAll requires an array argument');
            keep = old.filter((e) => !arg.some((x) => valuesEqual(e, x)));
          } else {
            const m = pullMatcher(arg);
            keep = old.filter((e) => !m(e));
          }
          if (keep.length !== old.length) setValue(doc, path, keep, t);
          break;
        }
        case '$pop': {
          const old = getPath(doc, path);
          if (old === undefined) break;
          if (!Array.isArray(old))
            throw badValue(
              `Path '${path}' contains an element of non-array type '${typeName(old)}'`,
            );
          if (old.length === 0) break;
          const dir = toNumber(arg);
          if (dir !== 1 && dir !== -1)
            throw badValue(`$pop expects 1 or -1, found: ${String(arg)}`);
          setValue(doc, path, dir === 1 ? old.slice(0, -1) : old.slice(1), t);
          break;
        }
        case '$rename': {
          const to = arg as string;
          const r = resolveParent(doc, parts, false);
          if (!r || Array.isArray(r.parent)) break;
          const value = r.parent[r.key];
          if (value === undefined) break;
          delete r.parent[r.key];
          t.unset(path);
          setValue(doc, to, value, t);
          break;
        }
      }
    }
  }
  if (
    !valuesEqual(doc._id, original._id) ||
    (original._id !== undefined && doc._id === undefined)
  ) {
    throw new MongoServerError(
      66,
      `Performing an update on the path '_id' would modify the immutable field '_id'`,
    );
  }
  const updatedFields: Doc = {};
  for (const p of t.updated) updatedFields[p] = getPath(doc, p);
  return {
    doc,
    modified: t.updated.size > 0 || t.removed.size > 0,
    description: { updatedFields, removedFields: [...t.removed], truncatedArrays: [] },
  };
}

/** Validate a replacement document (no operators, `_id` unchanged). */
export function applyReplacement(original: Doc | undefined, replacement: Doc): Doc {
  for (const k of Object.keys(replacement)) {
    if (k.startsWith('$')) {
      throw new MongoServerError(
        52,
        `The dollar ($) prefixed field '${k}' in '${k}' is not allowed in the context of an update's replacement document. Consider using an aggregation pipeline with $replaceWith.`,
      );
    }
  }
  const doc = deepClone(replacement);
  if (original) {
    if (doc._id !== undefined && !valuesEqual(doc._id, original._id)) {
      throw new MongoServerError(
        66,
        `After applying the update, the (immutable) field '_id' was found to have been altered to _id: ${String(doc._id)}`,
      );
    }
    // The stored _id keeps its position first and its original type.
    const { _id: _ignored, ...rest } = doc;
    return { _id: original._id, ...rest };
  }
  return doc;
}
