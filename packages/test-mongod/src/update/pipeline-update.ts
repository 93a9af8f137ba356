// Updates with an aggregation pipeline (manual: "Updates with Aggregation Pipeline"): $addFields /
// $set, $project / $unset and $replaceRoot / $replaceWith applied to the document. Their change
// event describes the difference between the old and the new document the way MongoDB's v2 oplog
// diff does (manual: "update Event"): fields compared in order, objects and arrays of the same
// type diffed recursively, a shortened array reported in truncatedArrays, and any diff that would
// be bigger than what it describes replaced by the whole value (at the top: the whole document,
// so the event is then a replace).
import { BSON, Int32 } from 'bson';
import { identical } from '../bson/compare.js';
import { isPlainObject } from '../bson/types.js';
import type { Doc } from '../bson/types.js';
import { MongoServerError } from '../errors.js';
import { compileDocStage, stageName } from '../query/pipeline.js';
import type { UpdateDescription } from './apply.js';
import { describeParts, isAmbiguous } from './disambiguate.js';
import type { PathPart } from './disambiguate.js';

const UPDATE_STAGES = new Set([
  '$addFields',
  '$set',
  '$project',
  '$unset',
  '$replaceRoot',
  '$replaceWith',
]);

/** The fields an update oplog entry carries besides its diff ({$v: 2, diff: {}}). */
const DELTA_ENTRY_PADDING = 15;

export interface PipelineUpdateResult {
  doc: Doc;
  modified: boolean;
  /** Undefined when MongoDB would log the whole document: the event is then a replace. */
  description: UpdateDescription | undefined;
}

/** Compile an update pipeline once; apply it to each matched document. */
export function compileUpdatePipeline(pipeline: unknown[]): (doc: Doc) => Doc {
  const stages = pipeline.map((s) => {
    const [name, spec] = stageName(s);
    if (!UPDATE_STAGES.has(name)) {
      throw new MongoServerError(72, `${name} is not allowed to be used within an update`);
    }
    return compileDocStage(name, spec);
  });
  return (doc) => {
    let cur = doc;
    for (const s of stages) cur = s(cur) as Doc;
    return cur;
  };
}

/** Run a compiled update pipeline on `before` and describe the change. */
export function applyPipelineUpdate(run: (doc: Doc) => Doc, before: Doc): PipelineUpdateResult {
  let after = run(before);
  if (after._id === undefined) {
    after = { _id: before._id, ...after };
  } else if (!identical(after._id, before._id)) {
    throw new MongoServerError(
      66,
      `After applying the update, the (immutable) field '_id' was found to have been altered to _id: ${String(after._id)}`,
    );
  }
  if (sameBson(before, after)) return { doc: before, modified: false, description: undefined };
  const diff = docDiff(before, after, DELTA_ENTRY_PADDING);
  return { doc: after, modified: true, description: diff && describe(diff) };
}

type DocDiff = {
  kind: 'doc';
  updates: [string, unknown][];
  inserts: [string, unknown][];
  deletes: string[];
  subs: [string, Diff][];
};
type ArrayDiff = {
  kind: 'array';
  resize?: number;
  /** By index, in index order: a new value or a sub-diff. */
  entries: [number, { value: unknown } | { sub: Diff }][];
};
type Diff = DocDiff | ArrayDiff;

function sameBson(a: unknown, b: unknown): boolean {
  return Buffer.from(BSON.serialize({ v: a })).equals(Buffer.from(BSON.serialize({ v: b })));
}

function sameKind(a: unknown, b: unknown): 'doc' | 'array' | undefined {
  if (isPlainObject(a) && isPlainObject(b)) return 'doc';
  if (Array.isArray(a) && Array.isArray(b)) return 'array';
  return undefined;
}

/** The diff as the v2 oplog format writes it, for its size. */
function serializedForm(d: Diff): Doc {
  if (d.kind === 'array') {
    const out: Doc = { a: true };
    if (d.resize !== undefined) out.l = new Int32(d.resize);
    for (const [i, e] of d.entries) {
      if ('value' in e) out[`u${i}`] = e.value;
      else out[`s${i}`] = serializedForm(e.sub);
    }
    return out;
  }
  const out: Doc = {};
  if (d.deletes.length > 0) out.d = Object.fromEntries(d.deletes.map((k) => [k, false]));
  if (d.updates.length > 0) out.u = Object.fromEntries(d.updates);
  if (d.inserts.length > 0) out.i = Object.fromEntries(d.inserts);
  for (const [k, sub] of d.subs) out[`s${k}`] = serializedForm(sub);
  return out;
}

/** A diff only when it is smaller than the new value it describes (plus `padding`). */
function viable(d: Diff, post: unknown, padding = 0): Diff | undefined {
  const postSize = BSON.calculateObjectSize({ v: post }) - 8;
  return postSize > BSON.calculateObjectSize(serializedForm(d)) + padding ? d : undefined;
}

function subDiff(pre: unknown, post: unknown): Diff | undefined {
  const kind = sameKind(pre, post);
  if (kind === 'doc') return docDiff(pre as Doc, post as Doc);
  if (kind === 'array') return arrayDiff(pre as unknown[], post as unknown[]);
  return undefined;
}

function docDiff(pre: Doc, post: Doc, padding = 0): Diff | undefined {
  const d: DocDiff = { kind: 'doc', updates: [], inserts: [], deletes: [], subs: [] };
  const preKeys = Object.keys(pre);
  const postKeys = Object.keys(post);
  const deletes = new Set<string>();
  let i = 0;
  let j = 0;
  while (i < preKeys.length && j < postKeys.length) {
    const pk = preKeys[i] as string;
    const qk = postKeys[j] as string;
    if (pk === qk) {
      if (!sameBson(pre[pk], post[qk])) {
        const sub = sameKind(pre[pk], post[qk]) ? subDiff(pre[pk], post[qk]) : undefined;
        if (sub) d.subs.push([pk, sub]);
        else d.updates.push([pk, post[qk]]);
      }
      i++;
      j++;
    } else {
      // Not in the same place: removed, unless it comes back later (then it is inserted).
      deletes.add(pk);
      i++;
    }
  }
  for (; i < preKeys.length; i++) d.deletes.push(preKeys[i] as string);
  for (; j < postKeys.length; j++) {
    const k = postKeys[j] as string;
    d.inserts.push([k, post[k]]);
    deletes.delete(k);
  }
  d.deletes.push(...deletes);
  return viable(d, post, padding);
}

function arrayDiff(pre: unknown[], post: unknown[]): Diff | undefined {
  const d: ArrayDiff = { kind: 'array', entries: [] };
  const n = Math.min(pre.length, post.length);
  for (let i = 0; i < n; i++) {
    if (sameBson(pre[i], post[i])) continue;
    const sub = sameKind(pre[i], post[i]) ? subDiff(pre[i], post[i]) : undefined;
    d.entries.push([i, sub ? { sub } : { value: post[i] }]);
  }
  for (let i = n; i < post.length; i++) d.entries.push([i, { value: post[i] }]);
  if (pre.length > post.length) d.resize = post.length;
  return viable(d, post);
}

/** updatedFields, removedFields and truncatedArrays of a diff, as a change stream reads it. */
function describe(diff: Diff): UpdateDescription {
  const out: UpdateDescription = {
    updatedFields: {},
    removedFields: [],
    truncatedArrays: [],
    disambiguatedPaths: {},
  };
  const note = (parts: PathPart[]): string => {
    const path = parts.map((p) => (typeof p === 'string' ? p : String(p.index))).join('.');
    if (isAmbiguous(parts)) (out.disambiguatedPaths as Doc)[path] = describeParts(parts);
    return path;
  };
  const walk = (d: Diff, at: PathPart[]): void => {
    if (d.kind === 'array') {
      if (d.resize !== undefined) out.truncatedArrays.push({ field: note(at), newSize: d.resize });
      for (const [i, e] of d.entries) {
        const parts = [...at, { index: i }];
        if ('value' in e) out.updatedFields[note(parts)] = e.value;
        else walk(e.sub, parts);
      }
      return;
    }
    for (const [k, v] of [...d.updates, ...d.inserts]) out.updatedFields[note([...at, k])] = v;
    for (const k of d.deletes) out.removedFields.push(note([...at, k]));
    for (const [k, sub] of d.subs) walk(sub, [...at, k]);
  };
  walk(diff, []);
  return out;
}
