/**
 * Which worker handles a document: rendezvous (highest-random-weight) hashing of the document's
 * namespace and `_id` over the worker names.
 *
 * Every worker name gets a pseudo-random score for the document, and the highest score wins.
 * Rendezvous hashing rather than a hash ring or `hash % n`, because:
 *
 * - the owner depends only on the set of names, never on their order in workers.toml;
 * - adding a worker moves only the documents it now wins, and all of them onto the new worker
 *   (about 1/(n+1) of them); removing a worker moves only its own documents, spread over the
 *   others. `hash % n` would move almost every document, breaking per-document order for all;
 * - the spread is that of a uniform hash, with no virtual nodes to tune (a ring needs hundreds of
 *   points per node to be as even);
 * - a lookup costs one SHA-256 per worker, O(workers), which is small for the handful of workers
 *   a deployment has (see the package README for measured costs);
 * - live rebalancing is simple: the old and the new owner of a document are `route` over the old
 *   and the new name set, no ring state to migrate.
 *
 * Score of a name for a document = the first 8 bytes, as an unsigned big-endian 64-bit integer,
 * of SHA-256 over (version 1 of the encoding):
 *
 *     "changeq-route-v1" (16 ASCII bytes)
 *     u32be(len(name)) name (UTF-8)
 *     u32be(len(ns))   ns   (UTF-8)
 *     u32be(len(key))  key  (canonicalKey(_id))
 *
 * Every part is length-prefixed, so distinct inputs never produce the same bytes. Equal scores
 * (practically impossible) go to the name whose UTF-8 bytes sort first. This is frozen by the
 * golden vectors in test/fixtures/routing-golden.json: changing any of it re-routes documents,
 * which breaks per-document order during an upgrade, and needs a migration.
 */
import { createHash, hash } from 'node:crypto';
import { canonicalKey } from './canonical-key.js';

/** Version of the routing function; it is part of every hashed message. */
export const ROUTING_VERSION = 1;

const ROUTE_DOMAIN = Buffer.from(`changeq-route-v${ROUTING_VERSION}`, 'ascii');
const IDENTITY_DOMAIN = Buffer.from('changeq-document-v1', 'ascii');

function lengthPrefixed(value: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + value.length);
  out.writeUInt32BE(value.length, 0);
  value.copy(out, 4);
  return out;
}

declare const documentKeyBrand: unique symbol;

/**
 * A document as routing and identity hash it: u32be(len(ns)) ns u32be(len(key)) key, where key
 * is the canonical `_id`. Encoding the `_id` is most of a lookup's cost, so whoever needs both
 * the route and the identity of one event computes this once and hands it to both.
 */
export type DocumentKey = Buffer & { readonly [documentKeyBrand]: true };

export function documentKey(ns: string, id: unknown): DocumentKey {
  if (typeof ns !== 'string') {
    throw new TypeError(`the namespace must be a string such as "shop.orders", not ${typeof ns}`);
  }
  return Buffer.concat([
    lengthPrefixed(Buffer.from(ns, 'utf8')),
    lengthPrefixed(canonicalKey(id)),
  ]) as DocumentKey;
}

/**
 * A short digest of (namespace, canonical `_id`): equal for every event of one document, distinct
 * (with overwhelming probability: 128 bits) for distinct documents. Used to order the events of
 * one document inside a worker.
 */
export function documentIdentity(ns: string, id: unknown): string {
  return identityOf(documentKey(ns, id));
}

/** `documentIdentity` of a key computed already. */
export function identityOf(key: DocumentKey): string {
  return createHash('sha256').update(IDENTITY_DOMAIN).update(key).digest('hex').slice(0, 32);
}

export class Router {
  /** The names as given (their order does not matter for routing). */
  readonly names: readonly string[];
  /** Per name, in `names` order: the start of its message, domain + u32be(len(name)) + name. */
  private readonly prefixes: readonly Buffer[];
  /** Per name, its UTF-8 bytes, for the tie-break. */
  private readonly nameBytes: readonly Buffer[];
  /**
   * Per name, a message buffer that starts with its prefix; each lookup writes the namespace and
   * key after it and hashes the filled part (one allocation-free one-shot hash per name).
   */
  private readonly messages: Buffer[];

  constructor(names: readonly string[]) {
    if (!Array.isArray(names) || names.length === 0) {
      throw new RangeError('a Router needs at least one worker name');
    }
    const seen = new Set<string>();
    for (const name of names) {
      if (typeof name !== 'string' || name.length === 0) {
        throw new TypeError(`worker names must be non-empty strings, got ${JSON.stringify(name)}`);
      }
      if (seen.has(name)) throw new RangeError(`duplicate worker name ${JSON.stringify(name)}`);
      seen.add(name);
    }
    this.names = Object.freeze([...names]);
    this.nameBytes = this.names.map((name) => Buffer.from(name, 'utf8'));
    this.prefixes = this.nameBytes.map((bytes) =>
      Buffer.concat([ROUTE_DOMAIN, lengthPrefixed(bytes)]),
    );
    this.messages = this.prefixes.map((prefix) => Buffer.concat([prefix, Buffer.alloc(64)]));
  }

  /** The worker that handles every event of the document `id` in namespace `ns`. */
  route(ns: string, id: unknown): string {
    return this.routeKey(documentKey(ns, id));
  }

  /** `route` of a key computed already. */
  routeKey(tail: DocumentKey): string {
    let best = -1;
    let bestHigh = 0;
    let bestLow = 0;
    for (let i = 0; i < this.prefixes.length; i++) {
      const prefix = this.prefixes[i] as Buffer;
      let message = this.messages[i] as Buffer;
      const length = prefix.length + tail.length;
      if (message.length < length) {
        message = Buffer.concat([prefix, Buffer.alloc(Math.max(tail.length, message.length))]);
        this.messages[i] = message;
      }
      tail.copy(message, prefix.length);
      const digest = hash('sha256', message.subarray(0, length), 'buffer');
      const high = digest.readUInt32BE(0);
      const low = digest.readUInt32BE(4);
      if (
        best < 0 ||
        high > bestHigh ||
        (high === bestHigh &&
          (low > bestLow ||
            (low === bestLow &&
              Buffer.compare(this.nameBytes[i] as Buffer, this.nameBytes[best] as Buffer) < 0)))
      ) {
        best = i;
        bestHigh = high;
        bestLow = low;
      }
    }
    return this.names[best] as string;
  }
}

/** One-off routing; hot paths should keep a Router, which prepares its per-name state once. */
export function routeDocument(names: readonly string[], ns: string, id: unknown): string {
  return new Router(names).route(ns, id);
}
