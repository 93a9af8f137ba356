// Sort specifications: ascending uses an array field's smallest element, descending its largest,
// missing sorts as null — as MongoDB does.
import { compareValues } from '../bson/compare.js';
import { collectLeaves } from '../bson/path.js';
import { isNumeric, isPlainObject, toNumber } from '../bson/types.js';
import type { Doc } from '../bson/types.js';
import { badValue, MongoServerError } from '../errors.js';

export type Comparator = (a: Doc, b: Doc) => number;

function sortKey(doc: Doc, parts: string[], dir: number): unknown {
  const leaves = collectLeaves(doc, parts);
  let best: unknown = undefined;
  let first = true;
  for (const leaf of leaves) {
    const candidates = Array.isArray(leaf) ? (leaf.length === 0 ? [undefined] : leaf) : [leaf];
    for (const c of candidates) {
      const v = c === undefined ? null : c;
      if (first || (dir > 0 ? compareValues(v, best) < 0 : compareValues(v, best) > 0)) best = v;
      first = false;
    }
  }
  return first ? null : best;
}

export function compileSort(spec: unknown): Comparator | undefined {
  if (spec === undefined || spec === null) return undefined;
  if (!isPlainObject(spec)) throw badValue('sort must be an object');
  const keys = Object.keys(spec);
  if (keys.length === 0) return undefined;
  const fields = keys.map((k) => {
    const v = spec[k];
    if (isPlainObject(v)) {
      throw new MongoServerError(
        2,
        `$meta sort on '${k}' is not supported by changeq test-mongod`,
        {
          extra: { unsupported: true },
        },
      );
    }
    const n = isNumeric(v) ? toNumber(v) : NaN;
    if (n !== 1 && n !== -1)
      throw new MongoServerError(
        15975,
        '$sort key ordering must be 1 (for ascending) or -1 (for descending)',
      );
    return { parts: k.split('.'), dir: n, natural: k === '$natural' };
  });
  if (fields.some((f) => f.natural)) return undefined;
  return (a, b) => {
    for (const f of fields) {
      const c = compareValues(sortKey(a, f.parts, f.dir), sortKey(b, f.parts, f.dir));
      if (c !== 0) return c * f.dir;
    }
    return 0;
  };
}

/** Stable sort that computes keys once per document. */
export function sortDocs(docs: Doc[], cmp: Comparator | undefined): Doc[] {
  if (!cmp) return docs;
  return docs
    .map((d, i) => ({ d, i }))
    .sort((x, y) => cmp(x.d, y.d) || x.i - y.i)
    .map((x) => x.d);
}
