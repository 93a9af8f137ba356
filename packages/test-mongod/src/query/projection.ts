// find() projections: inclusion or exclusion of (dotted) fields, `_id` included unless excluded.
import { isNumeric, isPlainObject, toNumber } from '../bson/types.js';
import type { Doc } from '../bson/types.js';
import { MongoServerError } from '../errors.js';

export type Projector = (doc: Doc) => Doc;

interface Tree {
  [key: string]: Tree | true;
}

function addPath(tree: Tree, parts: string[]): void {
  let cur = tree;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i] as string;
    if (i === parts.length - 1) {
      cur[p] = true;
      return;
    }
    const next = cur[p];
    if (next === true) return;
    if (next === undefined) cur[p] = {};
    cur = cur[p] as Tree;
  }
}

function include(value: unknown, tree: Tree): unknown {
  if (Array.isArray(value)) {
    return value.filter((e) => isPlainObject(e) || Array.isArray(e)).map((e) => include(e, tree));
  }
  if (!isPlainObject(value)) return undefined;
  const out: Doc = {};
  for (const k of Object.keys(value)) {
    const t = tree[k];
    if (t === undefined) continue;
    if (t === true) out[k] = value[k];
    else {
      const sub = include(value[k], t);
      if (sub !== undefined) out[k] = sub;
    }
  }
  return out;
}

function exclude(value: unknown, tree: Tree): unknown {
  if (Array.isArray(value)) return value.map((e) => exclude(e, tree));
  if (!isPlainObject(value)) return value;
  const out: Doc = {};
  for (const k of Object.keys(value)) {
    const t = tree[k];
    if (t === true) continue;
    out[k] = t === undefined ? value[k] : exclude(value[k], t);
  }
  return out;
}

export function compileProjection(spec: Doc | undefined): Projector | undefined {
  if (!spec || Object.keys(spec).length === 0) return undefined;
  let mode: 'include' | 'exclude' | undefined;
  let idSetting: boolean | undefined;
  const tree: Tree = {};
  for (const key of Object.keys(spec)) {
    const v = spec[key];
    let on: boolean;
    if (typeof v === 'boolean') on = v;
    else if (isNumeric(v)) on = toNumber(v) !== 0;
    else {
      throw new MongoServerError(
        2,
        `projection expression for field '${key}' is not supported by changeq test-mongod (only 0/1/true/false)`,
        { extra: { unsupported: true } },
      );
    }
    if (key.includes('$')) {
      throw new MongoServerError(
        2,
        `positional projection '${key}' is not supported by changeq test-mongod`,
        {
          extra: { unsupported: true },
        },
      );
    }
    if (key === '_id') {
      idSetting = on;
      continue;
    }
    const m = on ? 'include' : 'exclude';
    if (mode && mode !== m) {
      throw new MongoServerError(
        31254,
        on
          ? `Cannot do inclusion on field ${key} in exclusion projection`
          : `Cannot do exclusion on field ${key} in inclusion projection`,
      );
    }
    mode = m;
    addPath(tree, key.split('.'));
  }
  if (mode === undefined) mode = idSetting === false ? 'exclude' : 'include';
  if (mode === 'include') {
    if (idSetting !== false) tree._id = true;
    return (doc) => include(doc, tree) as Doc;
  }
  if (idSetting === false) tree._id = true;
  return (doc) => exclude(doc, tree) as Doc;
}
