// A small subset of aggregation expressions: field paths, $$ROOT, literals, nested documents and
// arrays, and a few common operators. Anything else is reported as unsupported, never guessed.
import { Double, Int32 } from 'bson';
import { compareValues } from '../bson/compare.js';
import { getPath } from '../bson/path.js';
import { isNumeric, isPlainObject, toNumber, typeName } from '../bson/types.js';
import type { Doc } from '../bson/types.js';
import { MongoServerError } from '../errors.js';

export type Expr = (root: Doc) => unknown;

function unsupported(op: string): MongoServerError {
  return new MongoServerError(
    168,
    `Unrecognized expression '${op}' (not supported by changeq test-mongod)`,
    {
      codeName: 'InvalidPipelineOperator',
      extra: { unsupported: true },
    },
  );
}

function fieldPath(path: string): Expr {
  if (path === '$$ROOT' || path === '$$CURRENT') return (root) => root;
  if (path.startsWith('$$ROOT.') || path.startsWith('$$CURRENT.')) {
    const rest = path.slice(path.indexOf('.') + 1);
    return (root) => getPath(root, rest);
  }
  if (path.startsWith('$$'))
    throw new MongoServerError(17276, `Use of undefined variable: ${path.slice(2)}`);
  const p = path.slice(1);
  return (root) => {
    const v = getPath(root, p);
    return v;
  };
}

function args(op: string, v: unknown, n?: number): unknown[] {
  const a = Array.isArray(v) ? v : [v];
  if (n !== undefined && a.length !== n) {
    throw new MongoServerError(
      16020,
      `Expression ${op} takes exactly ${n} arguments. ${a.length} were passed in.`,
    );
  }
  return a;
}

function num(result: number, ...inputs: unknown[]): unknown {
  const allInt = inputs.every((x) => typeName(x) === 'int');
  if (allInt && Number.isInteger(result) && Math.abs(result) < 2 ** 31) return new Int32(result);
  return new Double(result);
}

export function compileExpression(spec: unknown): Expr {
  if (typeof spec === 'string' && spec.startsWith('$')) return fieldPath(spec);
  if (Array.isArray(spec)) {
    const items = spec.map(compileExpression);
    return (root) => items.map((f) => f(root));
  }
  if (isPlainObject(spec)) {
    const keys = Object.keys(spec);
    if (keys.length === 1 && (keys[0] as string).startsWith('$')) {
      const op = keys[0] as string;
      const arg = spec[op];
      switch (op) {
        case '$literal':
          return () => arg;
        case '$eq':
        case '$ne':
        case '$gt':
        case '$gte':
        case '$lt':
        case '$lte':
        case '$cmp': {
          const [a, b] = args(op, arg, 2).map(compileExpression) as [Expr, Expr];
          return (root) => {
            const c = compareValues(a(root) ?? null, b(root) ?? null);
            if (op === '$cmp') return new Int32(c);
            return op === '$eq'
              ? c === 0
              : op === '$ne'
                ? c !== 0
                : op === '$gt'
                  ? c > 0
                  : op === '$gte'
                    ? c >= 0
                    : op === '$lt'
                      ? c < 0
                      : c <= 0;
          };
        }
        case '$and':
        case '$or': {
          const parts = args(op, arg).map(compileExpression);
          const truthy = (v: unknown): boolean =>
            !(v === undefined || v === null || v === false || (isNumeric(v) && toNumber(v) === 0));
          return op === '$and'
            ? (r) => parts.every((p) => truthy(p(r)))
            : (r) => parts.some((p) => truthy(p(r)));
        }
        case '$not': {
          const [a] = args(op, arg, 1).map(compileExpression) as [Expr];
          return (r) => {
            const v = a(r);
            return (
              v === undefined || v === null || v === false || (isNumeric(v) && toNumber(v) === 0)
            );
          };
        }
        case '$add':
        case '$multiply': {
          const parts = args(op, arg).map(compileExpression);
          return (r) => {
            const vals = parts.map((p) => p(r));
            if (vals.some((v) => v === null || v === undefined)) return null;
            if (op === '$add' && vals.some((v) => v instanceof Date)) {
              const base = vals.find((v) => v instanceof Date) as Date;
              const sum = vals
                .filter((v) => v !== base)
                .reduce<number>((s, v) => s + toNumber(v), 0);
              return new Date(base.getTime() + sum);
            }
            const res = vals.reduce<number>(
              (s, v) => (op === '$add' ? s + toNumber(v) : s * toNumber(v)),
              op === '$add' ? 0 : 1,
            );
            return num(res, ...vals);
          };
        }
        case '$subtract': {
          const [a, b] = args(op, arg, 2).map(compileExpression) as [Expr, Expr];
          return (r) => {
            const x = a(r);
            const y = b(r);
            if (x == null || y == null) return null;
            return num(toNumber(x) - toNumber(y), x, y);
          };
        }
        case '$concat': {
          const parts = args(op, arg).map(compileExpression);
          return (r) => {
            const vals = parts.map((p) => p(r));
            if (vals.some((v) => v === null || v === undefined)) return null;
            return vals.map(String).join('');
          };
        }
        case '$ifNull': {
          const parts = args(op, arg).map(compileExpression);
          return (r) => {
            for (const p of parts) {
              const v = p(r);
              if (v !== null && v !== undefined) return v;
            }
            return null;
          };
        }
        case '$regexMatch': {
          // { input, regex, options }: true when the string input matches; null or missing
          // input is no match (MongoDB returns false there).
          if (!isPlainObject(arg) || !('input' in arg) || !('regex' in arg)) {
            throw new MongoServerError(
              51105,
              "$regexMatch requires 'input' and 'regex' parameters",
            );
          }
          const spec = arg as { input: unknown; regex: unknown; options?: unknown };
          if (typeof spec.regex !== 'string') {
            throw new MongoServerError(51105, "$regexMatch needs 'regex' to be of type string");
          }
          if (spec.options !== undefined && typeof spec.options !== 'string') {
            throw new MongoServerError(51106, "$regexMatch needs 'options' to be of type string");
          }
          const bad = (spec.options ?? '').replace(/[imsx]/g, '');
          if (bad !== '') {
            throw new MongoServerError(51108, `$regexMatch invalid flag in regex options: ${bad}`);
          }
          // JavaScript has no x flag: PCRE's extended mode ignores whitespace and # comments.
          const extended = (spec.options ?? '').includes('x');
          const flags = (spec.options ?? '').replace('x', '');
          const source = extended
            ? spec.regex.replace(/#.*$/gm, '').replace(/\s+/g, '')
            : spec.regex;
          const regex = new RegExp(source, flags);
          const input = compileExpression(spec.input);
          return (r) => {
            const v = input(r);
            if (v === null || v === undefined) return false;
            if (typeof v !== 'string') {
              throw new MongoServerError(51104, "$regexMatch needs 'input' to be of type string");
            }
            return regex.test(v);
          };
        }
        case '$cond': {
          let c: unknown, t: unknown, f: unknown;
          if (Array.isArray(arg)) [c, t, f] = arg;
          else if (isPlainObject(arg))
            ({ if: c, then: t, else: f } = arg as { if: unknown; then: unknown; else: unknown });
          const [ce, te, fe] = [c, t, f].map(compileExpression) as [Expr, Expr, Expr];
          return (r) => {
            const v = ce(r);
            const truthy = !(
              v === undefined ||
              v === null ||
              v === false ||
              (isNumeric(v) && toNumber(v) === 0)
            );
            return truthy ? te(r) : fe(r);
          };
        }
        case '$toString': {
          const [a] = args(op, arg, 1).map(compileExpression) as [Expr];
          return (r) => {
            const v = a(r);
            if (v === null || v === undefined) return null;
            if (isNumeric(v)) return String(toNumber(v));
            if (v instanceof Date) return v.toISOString();
            return String((v as { toHexString?: () => string }).toHexString?.() ?? v);
          };
        }
        case '$size': {
          const [a] = args(op, arg, 1).map(compileExpression) as [Expr];
          return (r) => {
            const v = a(r);
            if (!Array.isArray(v))
              throw new MongoServerError(
                17124,
                `The argument to $size must be an array. Type of argument: ${typeName(v)}`,
              );
            return new Int32(v.length);
          };
        }
        case '$in': {
          const [a, b] = args(op, arg, 2).map(compileExpression) as [Expr, Expr];
          return (r) => {
            const arr = b(r);
            if (!Array.isArray(arr))
              throw new MongoServerError(40081, '$in requires an array as a second argument');
            const v = a(r);
            return arr.some((x) => compareValues(x, v) === 0);
          };
        }
        default:
          throw unsupported(op);
      }
    }
    const fields = keys.map((k) => {
      if (k.startsWith('$')) throw unsupported(k);
      return [k, compileExpression(spec[k])] as const;
    });
    return (root) => {
      const out: Doc = {};
      for (const [k, f] of fields) {
        const v = f(root);
        if (v !== undefined) out[k] = v;
      }
      return out;
    };
  }
  return () => spec;
}
