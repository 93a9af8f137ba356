// Query filter matching with MongoDB semantics: implicit array traversal, type bracketing for
// comparisons, `null` matching missing fields, and the documented query operators.
import { BSONRegExp } from 'bson';
import { compareValues, regexParts, valuesEqual } from '../bson/compare.js';
import { collectLeaves } from '../bson/path.js';
import { isNumeric, isPlainObject, toNumber, typeName, typeRank } from '../bson/types.js';
import type { Doc } from '../bson/types.js';
import { badValue, MongoServerError } from '../errors.js';
import { compileExpression } from './expression.js';

export type Predicate = (doc: unknown) => boolean;
type ValueTest = (v: unknown) => boolean;

const TYPE_ALIASES: Record<string, number> = {
  double: 1,
  string: 2,
  object: 3,
  array: 4,
  binData: 5,
  undefined: 6,
  objectId: 7,
  bool: 8,
  date: 9,
  null: 10,
  regex: 11,
  dbPointer: 12,
  javascript: 13,
  symbol: 14,
  int: 16,
  timestamp: 17,
  long: 18,
  decimal: 19,
  minKey: -1,
  maxKey: 127,
};

function typeCode(v: unknown): number {
  const n = TYPE_ALIASES[typeName(v)];
  return n ?? 3;
}

/** The `x` option: drop unescaped whitespace and #-comments from the pattern. */
function stripExtended(pattern: string): string {
  let out = '';
  let inComment = false;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i] as string;
    if (inComment) {
      if (ch === '\n') inComment = false;
      continue;
    }
    if (ch === '\\' && i + 1 < pattern.length) {
      out += ch + (pattern[i + 1] as string);
      i++;
    } else if (ch === '#') inComment = true;
    else if (!/\s/.test(ch)) out += ch;
  }
  return out;
}

export function toRegExp(v: unknown, extraOptions = ''): RegExp {
  let [pattern, options] = regexParts(v);
  options += extraOptions;
  let flags = '';
  for (const o of new Set(options)) {
    if (o === 'i' || o === 'm' || o === 's' || o === 'u') flags += o;
    else if (o === 'x') pattern = stripExtended(pattern);
    else throw new MongoServerError(51108, `invalid flag in regex options: ${o}`);
  }
  try {
    return new RegExp(pattern, flags);
  } catch (err) {
    throw new MongoServerError(51091, `Regular expression is invalid: ${(err as Error).message}`);
  }
}

function isRegex(v: unknown): boolean {
  return v instanceof RegExp || v instanceof BSONRegExp;
}

/** Equality test for one candidate, regex operands matching strings. */
function equalityTest(operand: unknown): ValueTest {
  if (isRegex(operand)) {
    const re = toRegExp(operand);
    return (v) => (typeof v === 'string' && re.test(v)) || (isRegex(v) && valuesEqual(v, operand));
  }
  if (operand === null) return (v) => v === null || v === undefined;
  const rank = typeRank(operand);
  return (v) => typeRank(v) === rank && compareValues(v, operand) === 0;
}

/** Candidates for value tests: each leaf, plus the elements of array leaves. */
function expand(leaves: unknown[]): unknown[] {
  const out: unknown[] = [];
  for (const l of leaves) {
    out.push(l);
    if (Array.isArray(l)) for (const e of l) out.push(e);
  }
  return out;
}

function comparison(op: string, operand: unknown): ValueTest {
  const t = typeName(operand);
  const crossType = t === 'minKey' || t === 'maxKey';
  const rank = typeRank(operand);
  const ok = (c: number): boolean =>
    op === '$gt' ? c > 0 : op === '$gte' ? c >= 0 : op === '$lt' ? c < 0 : c <= 0;
  if (isRegex(operand)) throw badValue(`Can't have RegEx as arg to predicate over field`);
  return (v) => {
    if (operand === null) {
      return (op === '$gte' || op === '$lte') && (v === null || v === undefined);
    }
    if (v === undefined) return crossType && ok(compareValues(null, operand));
    if (!crossType && typeRank(v) !== rank) return false;
    return ok(compareValues(v, operand));
  };
}

function asArray(op: string, v: unknown): unknown[] {
  if (!Array.isArray(v)) throw badValue(`${op} needs an array`);
  return v;
}

type LeafPredicate = (leaves: unknown[]) => boolean;

function anyCandidate(test: ValueTest): LeafPredicate {
  return (leaves) => expand(leaves).some(test);
}

function compileOperator(op: string, operand: unknown, spec: Doc, path: string): LeafPredicate {
  switch (op) {
    case '$eq':
      return anyCandidate(equalityTest(operand));
    case '$ne': {
      const p = anyCandidate(equalityTest(operand));
      return (l) => !p(l);
    }
    case '$gt':
    case '$gte':
    case '$lt':
    case '$lte':
      return anyCandidate(comparison(op, operand));
    case '$in': {
      const tests = asArray(op, operand).map((e) => {
        if (isPlainObject(e) && Object.keys(e).some((k) => k.startsWith('$')))
          throw badValue('cannot nest $ under $in');
        return equalityTest(e);
      });
      return anyCandidate((v) => tests.some((t) => t(v)));
    }
    case '$nin': {
      const tests = asArray(op, operand).map((e) => equalityTest(e));
      const p = anyCandidate((v) => tests.some((t) => t(v)));
      return (l) => !p(l);
    }
    case '$exists': {
      const want =
        operand === true ||
        (isNumeric(operand) && toNumber(operand) !== 0) ||
        typeof operand === 'string';
      return (l) => l.some((v) => v !== undefined) === want;
    }
    case '$type': {
      const wanted = (Array.isArray(operand) ? operand : [operand]).map((t) => {
        if (t === 'number') return 'number';
        if (typeof t === 'string') {
          const code = TYPE_ALIASES[t];
          if (code === undefined) throw badValue(`Unknown type name alias: ${t}`);
          return code;
        }
        if (isNumeric(t)) return toNumber(t);
        throw new MongoServerError(14, `type must be represented as a number or a string`);
      });
      const test = (v: unknown): boolean =>
        v !== undefined && wanted.some((w) => (w === 'number' ? isNumeric(v) : typeCode(v) === w));
      return (l) => l.some((v) => test(v) || (Array.isArray(v) && v.some(test)));
    }
    case '$regex': {
      if (typeof operand !== 'string' && !isRegex(operand))
        throw badValue('$regex has to be a string');
      const opts = spec.$options;
      const re =
        typeof operand === 'string'
          ? toRegExp(new BSONRegExp(operand, typeof opts === 'string' ? opts : ''))
          : toRegExp(operand, typeof opts === 'string' ? opts : '');
      return anyCandidate((v) => typeof v === 'string' && re.test(v));
    }
    case '$options':
      if (!('$regex' in spec)) throw badValue('$options needs a $regex');
      return () => true;
    case '$size': {
      if (!isNumeric(operand)) throw badValue('$size needs a number');
      const n = toNumber(operand);
      if (!Number.isInteger(n)) throw badValue('$size must be a whole number');
      if (n < 0) throw badValue('$size may not be negative');
      return (l) => l.some((v) => Array.isArray(v) && v.length === n);
    }
    case '$elemMatch': {
      if (!isPlainObject(operand)) throw badValue('$elemMatch needs an Object');
      const keys = Object.keys(operand);
      const isValueSpec =
        keys.length > 0 &&
        keys.every(
          (k) => k.startsWith('$') && k !== '$and' && k !== '$or' && k !== '$nor' && k !== '$expr',
        );
      const test: ValueTest = isValueSpec
        ? (
            (lp: LeafPredicate) => (v: unknown) =>
              lp([v])
          )(compileFieldSpec(operand, path))
        : (
            (p: Predicate) => (v: unknown) =>
              isPlainObject(v) && p(v)
          )(compileFilter(operand));
      return (l) => l.some((v) => Array.isArray(v) && v.some(test));
    }
    case '$all': {
      const items = asArray(op, operand);
      if (items.length === 0) return () => false;
      const preds = items.map((item) => {
        if (isPlainObject(item) && '$elemMatch' in item)
          return compileOperator('$elemMatch', item.$elemMatch, item, path);
        return anyCandidate(equalityTest(item));
      });
      return (l) => preds.every((p) => p(l));
    }
    case '$not': {
      let inner: LeafPredicate;
      if (isRegex(operand)) {
        const re = toRegExp(operand);
        inner = anyCandidate((v) => typeof v === 'string' && re.test(v));
      } else if (isPlainObject(operand)) {
        if (Object.keys(operand).length === 0) throw badValue('$not cannot be empty');
        inner = compileFieldSpec(operand, path);
      } else throw badValue('$not needs a regex or a document');
      return (l) => !inner(l);
    }
    case '$mod': {
      const arr = asArray(op, operand);
      if (arr.length !== 2) throw badValue('malformed mod, not enough elements');
      const d = toNumber(arr[0]);
      const r = toNumber(arr[1]);
      if (d === 0) throw badValue('divisor cannot be 0');
      return anyCandidate((v) => isNumeric(v) && Math.trunc(toNumber(v)) % d === r);
    }
    case '$comment':
      return () => true;
    case '$where':
    case '$text':
    case '$geoWithin':
    case '$geoIntersects':
    case '$near':
    case '$nearSphere':
    case '$bitsAllSet':
    case '$bitsAnySet':
    case '$bitsAllClear':
    case '$bitsAnyClear':
    case '$jsonSchema':
      throw new MongoServerError(2, `${op} is not supported by changeq test-mongod`, {
        extra: { unsupported: true },
      });
    default:
      throw badValue(`unknown operator: ${op}`);
  }
}

function compileFieldSpec(spec: Doc, path: string): LeafPredicate {
  const preds = Object.keys(spec).map((op) => compileOperator(op, spec[op], spec, path));
  return (l) => preds.every((p) => p(l));
}

function isOperatorObject(v: unknown): v is Doc {
  if (!isPlainObject(v)) return false;
  const keys = Object.keys(v);
  if (keys.length === 0 || !(keys[0] as string).startsWith('$')) return false;
  // DBRef-shaped documents are literal values.
  return !(keys[0] === '$ref' || keys[0] === '$id' || keys[0] === '$db');
}

function compileLogical(op: string, operand: unknown): Predicate {
  if (!Array.isArray(operand) || operand.length === 0)
    throw badValue(`${op} must be a nonempty array`);
  const preds = operand.map((f) => {
    if (!isPlainObject(f)) throw badValue(`${op} argument's entries must be objects`);
    return compileFilter(f);
  });
  if (op === '$and') return (d) => preds.every((p) => p(d));
  if (op === '$or') return (d) => preds.some((p) => p(d));
  return (d) => !preds.some((p) => p(d));
}

/** `$expr`: an aggregation expression, true when its value is truthy (not false, null, 0, missing). */
function compileExpr(spec: unknown): Predicate {
  const expression = compileExpression(spec);
  return (doc) => {
    const v = expression(doc as Doc);
    return !(v === undefined || v === null || v === false || (isNumeric(v) && toNumber(v) === 0));
  };
}

/** Compile a MongoDB query filter into a predicate. Throws MongoServerError for bad input. */
export function compileFilter(filter: Doc): Predicate {
  const preds: Predicate[] = [];
  for (const key of Object.keys(filter)) {
    const value = filter[key];
    if (key.startsWith('$')) {
      if (key === '$and' || key === '$or' || key === '$nor') preds.push(compileLogical(key, value));
      else if (key === '$comment') continue;
      else if (key === '$expr') preds.push(compileExpr(value));
      else if (key === '$where' || key === '$text' || key === '$jsonSchema')
        throw new MongoServerError(2, `${key} is not supported by changeq test-mongod`, {
          extra: { unsupported: true },
        });
      else throw badValue(`unknown top level operator: ${key}`);
      continue;
    }
    const parts = key.split('.');
    let lp: LeafPredicate;
    if (isOperatorObject(value)) {
      for (const k of Object.keys(value)) {
        if (!k.startsWith('$')) throw badValue(`unknown operator: ${k}`);
      }
      lp = compileFieldSpec(value, key);
    } else {
      lp = anyCandidate(equalityTest(value));
    }
    preds.push((d) => lp(collectLeaves(d, parts)));
  }
  if (preds.length === 1) return preds[0] as Predicate;
  return (d) => preds.every((p) => p(d));
}
