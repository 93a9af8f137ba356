// Cost of one routing lookup. Run from packages/shared: npx vitest bench --run
import { ObjectId } from 'mongodb';
import { bench, describe } from 'vitest';
import { canonicalKey, documentIdentity, Router } from '../src/index.js';

const ids = Array.from({ length: 1024 }, () => new ObjectId());
const strings = Array.from({ length: 1024 }, (_, i) => `user-${i}@example.com`);
const names = (n: number) => Array.from({ length: n }, (_, i) => `worker-${i + 1}`);

for (const n of [3, 16]) {
  describe(`route with ${n} workers`, () => {
    const router = new Router(names(n));
    let i = 0;
    bench('ObjectId _id', () => {
      router.route('shop.orders', ids[i++ & 1023]);
    });
    bench('string _id', () => {
      router.route('shop.orders', strings[i++ & 1023]);
    });
    bench('compound _id {tenant, n}', () => {
      router.route('shop.orders', { tenant: 'acme', n: i++ });
    });
  });
}

describe('parts', () => {
  let i = 0;
  bench('canonicalKey(ObjectId)', () => {
    canonicalKey(ids[i++ & 1023]);
  });
  bench('documentIdentity(ObjectId)', () => {
    documentIdentity('shop.orders', ids[i++ & 1023]);
  });
});
