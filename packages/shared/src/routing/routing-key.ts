/**
 * Routing keys: what orders the events of a namespace (`[routing]` in workers.toml).
 *
 * - `document` (the default): the events of one document run in order; the route and the line
 *   are those of (namespace, `documentKey._id`), byte for byte what they were before routing keys;
 * - a field path, `fullDocument.<path>` or `documentKey.<field>` (a shard-key field): the events
 *   of every document with the same value run in order (all orders of one customer);
 * - `namespace`: every event of the namespace runs in order, on one worker.
 *
 * A key is hashed as a DocumentKey whose namespace part is `ns NUL spec` (spec: the field path,
 * or empty for `namespace`) and whose value part is the canonical key of the value (null for
 * `namespace`, and for a field the document does not have, as MongoDB treats a missing shard-key
 * field). MongoDB forbids NUL in namespaces, so no routing key can equal a document's key.
 * Frozen by test/fixtures/routing-golden.json (its `lines` rows).
 */
import { documentKey, type DocumentKey } from './router.js';

export type RoutingRule =
  | { kind: 'document' }
  | { kind: 'namespace' }
  | {
      kind: 'field';
      /** As written: `fullDocument.customerId`. */
      path: string;
      /** Which part of the event holds the field. */
      root: 'fullDocument' | 'documentKey';
      /** The path inside the document, split at dots: `['customerId']`. */
      parts: readonly string[];
    };

export const DOCUMENT_RULE: RoutingRule = Object.freeze({ kind: 'document' });

/** A field path's segment: what a MongoDB field name may be in a path (no dots, no `$` start). */
const SEGMENT = /^[^.$\0][^.\0]*$/;

/**
 * Reads a `[routing]` value; throws a one-line reason (the caller adds file and line) when it is
 * none of `document`, `namespace`, `fullDocument.<path>`, `documentKey.<field>`.
 */
export function parseRoutingRule(value: string): RoutingRule {
  if (value === 'document') return DOCUMENT_RULE;
  if (value === 'namespace') return Object.freeze({ kind: 'namespace' });
  const [root, ...parts] = value.split('.');
  if ((root === 'fullDocument' || root === 'documentKey') && parts.length > 0) {
    const bad = parts.find((part) => !SEGMENT.test(part));
    if (bad !== undefined) {
      throw new RangeError(
        `the field path ${JSON.stringify(value)} has the segment ${JSON.stringify(bad)}, which is not a field name`,
      );
    }
    if (root === 'documentKey' && parts.length !== 1) {
      throw new RangeError(
        `documentKey holds only _id and the shard-key fields, so ${JSON.stringify(value)} must name one of them (documentKey.<field>)`,
      );
    }
    return Object.freeze({ kind: 'field', path: value, root, parts: Object.freeze(parts) });
  }
  throw new RangeError(
    `${JSON.stringify(value)} is not a routing key: write "document", "namespace", "fullDocument.<path>" or "documentKey.<field>"`,
  );
}

/** A rule as workers.toml writes it (parseRoutingRule reads it back). */
export function routingSpec(rule: RoutingRule): string {
  return rule.kind === 'field' ? rule.path : rule.kind;
}

/** The hashed key of a routing line: the namespace, the rule, the value (see the header). */
export function lineKey(ns: string, rule: RoutingRule, value: unknown): DocumentKey {
  if (rule.kind === 'document') return documentKey(ns, value);
  return documentKey(`${ns}\0${rule.kind === 'field' ? rule.path : ''}`, value);
}

/** The value at `parts` in `doc` (null when a step is missing or not a document). */
export function fieldValue(doc: unknown, parts: readonly string[]): unknown {
  let at: unknown = doc;
  for (const part of parts) {
    if (at === null || typeof at !== 'object' || Array.isArray(at)) return null;
    if (!Object.prototype.hasOwnProperty.call(at, part)) return null;
    at = (at as Record<string, unknown>)[part];
  }
  return at === undefined ? null : at;
}
