import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BSON, Long, ObjectId } from 'mongodb';

const { EJSON } = BSON;
import { describe, expect, it } from 'vitest';
import {
  canonicalKey,
  documentIdentity,
  Router,
  routeDocument,
  ROUTING_VERSION,
} from '../src/index.js';

const NS = 'shop.orders';

/** 30,000 distinct, deterministic keys: 10,000 each of ObjectIds, integers and strings. */
function keys(): unknown[] {
  const out: unknown[] = [];
  for (let i = 0; i < 10_000; i++) {
    out.push(
      new ObjectId(
        (0x64000000 + i).toString(16).padStart(8, '0') + 'a1b2c3d4e5f6'.padStart(16, '0'),
      ),
    );
    out.push(i * 7 - 20_000);
    out.push(`user-${i}`);
  }
  return out;
}

function routeAll(names: readonly string[], ids: readonly unknown[]): string[] {
  const router = new Router(names);
  return ids.map((id) => router.route(NS, id));
}

function counts(routes: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const worker of routes) out.set(worker, (out.get(worker) ?? 0) + 1);
  return out;
}

describe('Router: balance and stability', () => {
  const ids = keys();
  const three = ['alpha', 'bravo', 'charlie'];
  const before = routeAll(three, ids);

  it('uses distinct keys (the test data is what it claims)', () => {
    expect(new Set(ids.map((id) => canonicalKey(id).toString('hex'))).size).toBe(30_000);
  });

  it('gives each of 3 workers 33% ± 5% of 30,000 keys', () => {
    const perWorker = counts(before);
    expect([...perWorker.keys()].sort()).toEqual(three);
    for (const count of perWorker.values()) {
      expect(Math.abs(count / ids.length - 1 / 3)).toBeLessThanOrEqual(0.05);
    }
  });

  it('is balanced within each kind of key, too', () => {
    for (let kind = 0; kind < 3; kind++) {
      const subset = before.filter((_, index) => index % 3 === kind);
      for (const count of counts(subset).values()) {
        expect(Math.abs(count / subset.length - 1 / 3)).toBeLessThanOrEqual(0.05);
      }
    }
  });

  it('moves at most 30% of keys when a 4th worker is added, all of them onto it', () => {
    const after = routeAll([...three, 'delta'], ids);
    let moved = 0;
    after.forEach((worker, index) => {
      if (worker !== before[index]) {
        moved++;
        expect(worker).toBe('delta');
      }
    });
    expect(moved / ids.length).toBeLessThanOrEqual(0.3);
    expect(moved / ids.length).toBeGreaterThan(0.2); // the new worker does get its quarter
  });

  it('moves only the keys of a removed worker', () => {
    const after = routeAll(['alpha', 'charlie'], ids);
    after.forEach((worker, index) => {
      if (before[index] !== 'bravo') expect(worker).toBe(before[index]);
      else expect(['alpha', 'charlie']).toContain(worker);
    });
  });

  it('does not depend on the order of the names', () => {
    for (const order of [
      ['charlie', 'bravo', 'alpha'],
      ['bravo', 'alpha', 'charlie'],
    ]) {
      expect(routeAll(order, ids)).toEqual(before);
    }
  });

  it('depends on the namespace as well as the _id', () => {
    const router = new Router(three);
    const sample = ids.slice(0, 3000);
    const differ = sample.filter(
      (id) => router.route('shop.orders', id) !== router.route('shop.items', id),
    );
    expect(differ.length / sample.length).toBeGreaterThan(0.5);
  });
});

describe('Router: the hash-ring 1.0.1 bug (every key on one node)', () => {
  it('spreads distinct keys over every worker', () => {
    for (const names of [
      ['a', 'b'],
      ['alpha', 'bravo', 'charlie'],
      ['Tom', 'Dick', 'Harry'],
      ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14', '15', '16'],
    ]) {
      const router = new Router(names);
      const used = new Set<string>();
      for (let i = 0; i < 400; i++) used.add(router.route(NS, `key-${i}`));
      expect([...used].sort()).toEqual([...names].sort());
    }
  });

  it('sends the same key to the same worker, every time and from every Router', () => {
    const names = ['alpha', 'bravo', 'charlie'];
    const router = new Router(names);
    for (let i = 0; i < 200; i++) {
      const id = new ObjectId((0x65000000 + i).toString(16) + '0000000000000000');
      const owner = router.route(NS, id);
      for (let again = 0; again < 3; again++) {
        expect(router.route(NS, id)).toBe(owner);
        expect(new Router(names).route(NS, new ObjectId(id.toHexString()))).toBe(owner);
        expect(routeDocument(names, NS, id)).toBe(owner);
      }
    }
  });

  it('routes a single worker to itself', () => {
    const router = new Router(['only']);
    expect(router.route(NS, 1)).toBe('only');
    expect(router.route('x.y', 'z')).toBe('only');
  });
});

describe('Router: arguments', () => {
  it('rejects an empty, duplicated or non-string name list', () => {
    expect(() => new Router([])).toThrow(/at least one worker name/);
    expect(() => new Router(['a', 'b', 'a'])).toThrow(/duplicate worker name "a"/);
    expect(() => new Router(['a', ''])).toThrow(/non-empty strings/);
    expect(() => new Router(['a', 3 as unknown as string])).toThrow(/non-empty strings, got 3/);
  });

  it('keeps the names as given, frozen', () => {
    const names = ['charlie', 'alpha'];
    const router = new Router(names);
    names.push('zulu');
    expect(router.names).toEqual(['charlie', 'alpha']);
    expect(Object.isFrozen(router.names)).toBe(true);
  });

  it('rejects a namespace that is not a string and an _id that is not BSON', () => {
    const router = new Router(['a', 'b']);
    expect(() => router.route(undefined as unknown as string, 1)).toThrow(
      /namespace must be a string/,
    );
    expect(() => router.route(NS, () => 1)).toThrow(/not a BSON value/);
  });

  it('handles long namespaces and keys (longer than the reusable message buffers)', () => {
    const router = new Router(['a', 'b', 'c']);
    const long = 'x'.repeat(10_000);
    const owner = router.route(`db.${long}`, { big: long });
    expect(router.route(`db.${long}`, { big: long })).toBe(owner);
    // The short lookups afterwards still see only their own bytes.
    expect(router.route(NS, 1)).toBe(new Router(['a', 'b', 'c']).route(NS, 1));
  });
});

describe('Router: the documented hash', () => {
  /** An independent implementation of the encoding documented in router.ts and the README. */
  function score(name: string, ns: string, id: unknown): bigint {
    const part = (bytes: Buffer) => {
      const length = Buffer.alloc(4);
      length.writeUInt32BE(bytes.length);
      return Buffer.concat([length, bytes]);
    };
    const message = Buffer.concat([
      Buffer.from('changeq-route-v1', 'ascii'),
      part(Buffer.from(name, 'utf8')),
      part(Buffer.from(ns, 'utf8')),
      part(canonicalKey(id)),
    ]);
    return createHash('sha256').update(message).digest().readBigUInt64BE(0);
  }

  it('routes to the name with the highest 64-bit score', () => {
    expect(ROUTING_VERSION).toBe(1);
    const names = ['alpha', 'bravo', 'charlie', 'delta', 'echo'];
    const router = new Router(names);
    for (let i = 0; i < 500; i++) {
      const id = i % 2 === 0 ? i : `id-${i}`;
      const scores = names.map((name) => score(name, NS, id));
      const best = names[scores.indexOf(scores.reduce((a, b) => (b > a ? b : a)))];
      expect(router.route(NS, id)).toBe(best);
    }
  });

  it('computes documentIdentity as documented', () => {
    const ns = Buffer.from(NS, 'utf8');
    const key = canonicalKey(Long.fromNumber(42));
    const length = (n: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n);
      return b;
    };
    const expected = createHash('sha256')
      .update(
        Buffer.concat([
          Buffer.from('changeq-document-v1'),
          length(ns.length),
          ns,
          length(key.length),
          key,
        ]),
      )
      .digest('hex')
      .slice(0, 32);
    expect(documentIdentity(NS, 42)).toBe(expected);
  });
});

interface GoldenRow {
  ns: string;
  id: unknown;
  names: string[];
  worker: string;
  key: string;
  identity: string;
}

describe('Router: golden vectors (a changed route breaks per-document order on upgrade)', () => {
  const file = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'routing-golden.json');
  const table = JSON.parse(readFileSync(file, 'utf8')) as {
    routingVersion: number;
    rows: GoldenRow[];
  };
  const decode = (row: GoldenRow) =>
    EJSON.deserialize({ _id: row.id }, { relaxed: false })._id as unknown;

  it('is a table of at least 60 rows for version 1 over the three name lists', () => {
    expect(table.routingVersion).toBe(ROUTING_VERSION);
    expect(table.rows.length).toBeGreaterThanOrEqual(60);
    const lists = new Set(table.rows.map((row) => row.names.join(',')));
    expect(lists).toEqual(
      new Set(['alpha,bravo,charlie', 'Tom,Dick,Harry', 'north,south,east,west,up,down,center-7']),
    );
  });

  it('covers every _id type', () => {
    const text = JSON.stringify(table.rows.map((row) => row.id));
    for (const marker of [
      '"$oid"',
      '"$numberInt"',
      '"$numberLong"',
      '"$numberDouble":"NaN"',
      '"$numberDouble":"Infinity"',
      '"$numberDouble":"-Infinity"',
      '"$numberDouble":"-0.0"',
      '"$numberDecimal"',
      '"$symbol"',
      '"$date"',
      '"$timestamp"',
      '"subType":"04"',
      '"subType":"00"',
      '"$regularExpression"',
      '"$minKey"',
      '"$maxKey"',
      '"$ref"',
      '"$code"',
      '"$scope"',
      'true',
      'false',
      'null',
      '"tenant"',
      '[',
    ]) {
      expect(text, marker).toContain(marker);
    }
    expect(table.rows.some((row) => typeof row.id === 'string')).toBe(true);
  });

  it('still routes every row to the recorded worker, with the recorded key and identity', () => {
    const routers = new Map<string, Router>();
    const changed: string[] = [];
    for (const row of table.rows) {
      const names = row.names.join(',');
      const router = routers.get(names) ?? new Router(row.names);
      routers.set(names, router);
      const id = decode(row);
      const got = {
        worker: router.route(row.ns, id),
        key: canonicalKey(id).toString('hex'),
        identity: documentIdentity(row.ns, id),
      };
      if (got.worker !== row.worker || got.key !== row.key || got.identity !== row.identity) {
        changed.push(`${row.ns} ${JSON.stringify(row.id)} over [${names}]: ${JSON.stringify(got)}`);
      }
    }
    expect(changed).toEqual([]);
  });

  it('routes every row the same after the driver round trip', () => {
    for (const row of table.rows) {
      const id = decode(row);
      // The driver's default RegExp cannot hold BSON's x option (see canonical-key.test.ts).
      const lossy = /"options":"[^"]*[^ims"]/.test(JSON.stringify(row.id));
      const options = lossy ? { bsonRegExp: true } : undefined;
      const driver = BSON.deserialize(BSON.serialize({ _id: id }), options)._id as unknown;
      expect(routeDocument(row.names, row.ns, driver)).toBe(row.worker);
    }
  });
});
