// Aggregation stages. Per-document stages ($match, $project, $addFields/$set, $unset,
// $replaceRoot/$replaceWith) are shared with change streams; whole-set stages ($sort, $skip,
// $limit, $count, $group) are for collection aggregations.
import { Double, Int32, Long } from 'bson';
import { canonicalKey } from '../bson/canonical.js';
import { compareValues } from '../bson/compare.js';
import { getPath, setPath, deletePath } from '../bson/path.js';
import { deepClone, isNumeric, isPlainObject, toNumber, typeName } from '../bson/types.js';
import type { Doc } from '../bson/types.js';
import { badValue, MongoServerError } from '../errors.js';
import { compileExpression } from './expression.js';
import type { Expr } from './expression.js';
import { compileFilter } from './match.js';
import { compileProjection } from './projection.js';
import { compileSort, sortDocs } from './sort.js';

export type DocStage = (doc: Doc) => Doc | undefined;
export type SetStage = (docs: Doc[]) => Doc[];

export const PER_DOCUMENT_STAGES = new Set([
  '$match',
  '$project',
  '$addFields',
  '$set',
  '$unset',
  '$replaceRoot',
  '$replaceWith',
]);

function isProjectionFlag(v: unknown): boolean {
  return typeof v === 'boolean' || isNumeric(v);
}

function compileAggProject(spec: Doc): DocStage {
  if (Object.values(spec).every(isProjectionFlag)) {
    const p = compileProjection(spec);
    return p ? (d) => p(d) : (d) => d;
  }
  // Mixed: inclusions plus computed fields (an inclusion projection with expressions).
  const include: string[] = [];
  const computed: [string, Expr][] = [];
  let excludeId = false;
  for (const [k, v] of Object.entries(spec)) {
    if (isProjectionFlag(v)) {
      const on = typeof v === 'boolean' ? v : toNumber(v) !== 0;
      if (k === '_id' && !on) excludeId = true;
      else if (on) include.push(k);
      else
        throw new MongoServerError(
          31254,
          `Cannot do exclusion on field ${k} in inclusion projection`,
        );
    } else computed.push([k, compileExpression(v)]);
  }
  const inc = compileProjection(
    Object.fromEntries([...include.map((k) => [k, 1]), ...(excludeId ? [['_id', 0]] : [])]),
  );
  return (d) => {
    const out = inc ? inc(d) : {};
    if (!inc && !excludeId && d._id !== undefined) out._id = d._id;
    for (const [k, f] of computed) {
      const v = f(d);
      if (v !== undefined) setPath(out, k, v);
    }
    return out;
  };
}

function compileAddFields(spec: Doc): DocStage {
  const fields = Object.entries(spec).map(([k, v]) => [k, compileExpression(v)] as const);
  return (d) => {
    const out = deepClone(d);
    for (const [k, f] of fields) {
      const v = f(d);
      if (v === undefined) deletePath(out, k);
      else setPath(out, k, v);
    }
    return out;
  };
}

function compileUnset(spec: unknown): DocStage {
  const fields = typeof spec === 'string' ? [spec] : Array.isArray(spec) ? spec : undefined;
  if (!fields || !fields.every((f) => typeof f === 'string')) {
    throw new MongoServerError(
      31002,
      '$unset specification must be a string or an array containing only string values',
    );
  }
  const p = compileProjection(Object.fromEntries((fields as string[]).map((f) => [f, 0])));
  return p ? (d) => p(d) : (d) => d;
}

function compileReplaceRoot(expr: unknown): DocStage {
  const f = compileExpression(expr);
  return (d) => {
    const v = f(d);
    if (!isPlainObject(v)) {
      throw new MongoServerError(
        40228,
        `'newRoot' expression must evaluate to an object, but resulting value was: ${typeName(v)}`,
      );
    }
    return v;
  };
}

export function compileDocStage(name: string, spec: unknown): DocStage {
  switch (name) {
    case '$match': {
      if (!isPlainObject(spec))
        throw badValue('the match filter must be an expression in an object');
      const p = compileFilter(spec);
      return (d) => (p(d) ? d : undefined);
    }
    case '$project':
      if (!isPlainObject(spec))
        throw new MongoServerError(15969, '$project specification must be an object');
      if (Object.keys(spec).length === 0)
        throw new MongoServerError(51272, '$project specification must have at least one field');
      return compileAggProject(spec);
    case '$addFields':
    case '$set':
      if (!isPlainObject(spec))
        throw new MongoServerError(40272, `${name} specification stage must be an object`);
      return compileAddFields(spec);
    case '$unset':
      return compileUnset(spec);
    case '$replaceRoot':
      if (!isPlainObject(spec) || !('newRoot' in spec))
        throw new MongoServerError(40231, 'no newRoot specified for the $replaceRoot stage');
      return compileReplaceRoot(spec.newRoot);
    case '$replaceWith':
      return compileReplaceRoot(spec);
    default:
      throw new MongoServerError(40324, `Unrecognized pipeline stage name: '${name}'`);
  }
}

type Accumulator = { add(root: Doc): void; result(): unknown };

function accumulator(op: string, arg: unknown): () => Accumulator {
  const f = op === '$count' ? () => 1 : compileExpression(arg);
  switch (op) {
    case '$sum':
    case '$count':
      return () => {
        let sum = 0;
        let type: 'int' | 'long' | 'double' = 'int';
        return {
          add(r) {
            const v = f(r);
            if (!isNumeric(v)) return;
            const t = typeName(v);
            if (t === 'double' || t === 'decimal') type = 'double';
            else if (t === 'long' && type === 'int') type = 'long';
            sum += toNumber(v);
          },
          result() {
            if (type === 'double') return new Double(sum);
            if (type === 'int' && Math.abs(sum) < 2 ** 31) return new Int32(sum);
            return Long.fromNumber(sum);
          },
        };
      };
    case '$avg':
      return () => {
        let sum = 0;
        let n = 0;
        return {
          add(r) {
            const v = f(r);
            if (isNumeric(v)) {
              sum += toNumber(v);
              n++;
            }
          },
          result: () => (n === 0 ? null : new Double(sum / n)),
        };
      };
    case '$min':
    case '$max':
      return () => {
        let best: unknown = undefined;
        return {
          add(r) {
            const v = f(r);
            if (v === undefined || v === null) return;
            if (
              best === undefined ||
              (op === '$min' ? compareValues(v, best) < 0 : compareValues(v, best) > 0)
            )
              best = v;
          },
          result: () => best ?? null,
        };
      };
    case '$first':
    case '$last':
      return () => {
        let seen = false;
        let val: unknown = null;
        return {
          add(r) {
            if (op === '$first' && seen) return;
            seen = true;
            val = f(r) ?? null;
          },
          result: () => val,
        };
      };
    case '$push':
    case '$addToSet':
      return () => {
        const out: unknown[] = [];
        const keys = new Set<string>();
        return {
          add(r) {
            const v = f(r);
            if (v === undefined) return;
            if (op === '$addToSet') {
              const k = canonicalKey(v);
              if (keys.has(k)) return;
              keys.add(k);
            }
            out.push(v);
          },
          result: () => out,
        };
      };
    default:
      throw new MongoServerError(15952, `unknown group operator '${op}'`);
  }
}

function compileGroup(spec: unknown): SetStage {
  if (!isPlainObject(spec) || !('_id' in spec)) {
    throw new MongoServerError(15955, 'a group specification must include an _id');
  }
  const idExpr = compileExpression(spec._id);
  const accs = Object.entries(spec)
    .filter(([k]) => k !== '_id')
    .map(([k, v]) => {
      if (!isPlainObject(v) || Object.keys(v).length !== 1) {
        throw new MongoServerError(40234, `The field '${k}' must be an accumulator object`);
      }
      const op = Object.keys(v)[0] as string;
      return [k, accumulator(op, v[op])] as const;
    });
  return (docs) => {
    const groups = new Map<string, { id: unknown; accs: [string, Accumulator][] }>();
    for (const d of docs) {
      const id = idExpr(d) ?? null;
      const key = canonicalKey(id);
      let g = groups.get(key);
      if (!g) {
        g = { id, accs: accs.map(([k, mk]) => [k, mk()]) };
        groups.set(key, g);
      }
      for (const [, a] of g.accs) a.add(d);
    }
    return [...groups.values()].map((g) => {
      const out: Doc = { _id: g.id };
      for (const [k, a] of g.accs) out[k] = a.result();
      return out;
    });
  };
}

function positiveInt(name: string, v: unknown, allowZero: boolean): number {
  if (!isNumeric(v)) throw new MongoServerError(15957, `the ${name} must be specified as a number`);
  const n = toNumber(v);
  if (!Number.isInteger(n) || n < 0 || (!allowZero && n === 0)) {
    throw new MongoServerError(
      15958,
      `the ${name} must be ${allowZero ? 'non-negative' : 'positive'}`,
    );
  }
  return n;
}

export function compileSetStage(name: string, spec: unknown): SetStage {
  if (PER_DOCUMENT_STAGES.has(name)) {
    const s = compileDocStage(name, spec);
    return (docs) => {
      const out: Doc[] = [];
      for (const d of docs) {
        const r = s(d);
        if (r) out.push(r);
      }
      return out;
    };
  }
  switch (name) {
    case '$sort': {
      const cmp = compileSort(spec);
      return (docs) => sortDocs(docs, cmp);
    }
    case '$limit': {
      const n = positiveInt('limit', spec, false);
      return (docs) => docs.slice(0, n);
    }
    case '$skip': {
      const n = positiveInt('skip', spec, true);
      return (docs) => docs.slice(n);
    }
    case '$count': {
      if (typeof spec !== 'string' || spec === '')
        throw new MongoServerError(40156, 'the count field must be a non-empty string');
      return (docs) => (docs.length === 0 ? [] : [{ [spec]: new Int32(docs.length) }]);
    }
    case '$group':
      return compileGroup(spec);
    case '$changeStreamSplitLargeEvent':
      throw new MongoServerError(20, `${name} can only be used in a $changeStream pipeline`);
    case '$lookup':
    case '$unwind':
    case '$facet':
    case '$bucket':
    case '$bucketAuto':
    case '$sample':
    case '$out':
    case '$merge':
    case '$graphLookup':
    case '$sortByCount':
    case '$redact':
    case '$geoNear':
    case '$indexStats':
    case '$collStats':
    case '$currentOp':
    case '$listSessions':
    case '$densify':
    case '$fill':
    case '$setWindowFields':
    case '$unionWith':
    case '$documents':
      throw new MongoServerError(
        40324,
        `Pipeline stage ${name} is not supported by changeq test-mongod`,
        {
          codeName: 'Location40324',
          extra: { unsupported: true },
        },
      );
    default:
      throw new MongoServerError(40324, `Unrecognized pipeline stage name: '${name}'`);
  }
}

export function stageName(stage: unknown): [string, unknown] {
  if (!isPlainObject(stage))
    throw new MongoServerError(14, "Each element of the 'pipeline' array must be an object");
  const keys = Object.keys(stage);
  if (keys.length !== 1) {
    throw new MongoServerError(
      40323,
      'A pipeline stage specification object must contain exactly one field.',
    );
  }
  const name = keys[0] as string;
  return [name, stage[name]];
}

export function compilePipeline(pipeline: unknown[]): SetStage {
  const stages = pipeline.map((s) => {
    const [name, spec] = stageName(s);
    return compileSetStage(name, spec);
  });
  return (docs) => stages.reduce((acc, s) => s(acc), docs);
}

export { getPath };
