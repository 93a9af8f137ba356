import { describe, expect, test } from 'vitest';
import { UserError } from '@changeq/shared';
import { parseWatch, scopeMatch, singleDatabase } from '../src/watch-scope.js';

describe('WATCH', () => {
  test('empty = the whole deployment minus system and excluded databases', () => {
    const scope = parseWatch('', ['audit']);
    expect(scope).toEqual({
      kind: 'deployment',
      excludeDbs: ['admin', 'local', 'config', 'audit'],
    });
    expect(scopeMatch(scope)).toEqual({ 'ns.db': { $nin: ['admin', 'local', 'config', 'audit'] } });
  });

  test('a database, one collection, several namespaces (dots in collection names kept)', () => {
    expect(parseWatch('shop')).toEqual({ kind: 'database', db: 'shop' });
    expect(parseWatch('shop.orders.v2')).toEqual({
      kind: 'collection',
      db: 'shop',
      coll: 'orders.v2',
    });
    const many = parseWatch('shop.orders, shop.users');
    expect(many).toEqual({
      kind: 'namespaces',
      namespaces: [
        { db: 'shop', coll: 'orders' },
        { db: 'shop', coll: 'users' },
      ],
    });
    expect(singleDatabase(many)).toBe('shop');
    expect(singleDatabase(parseWatch('a.x,b.y'))).toBeNull();
    expect(scopeMatch(many)).toEqual({
      $or: [
        { 'ns.db': 'shop', 'ns.coll': { $in: ['orders', 'users'] } },
        { 'to.db': 'shop', 'to.coll': { $in: ['orders', 'users'] } },
        { 'ns.db': 'shop', operationType: 'dropDatabase' },
      ],
    });
  });

  test.each([
    ['shop.orders,', /empty entry/],
    ['shop,shop.orders', /mixes the database name "shop" with namespaces/],
    // Issue 12: "a..b" was accepted, "shop." was called a mix of a database and namespaces.
    ['a..b', /names the collection ".b" in "a..b", and a collection name cannot start with "."/],
    ['shop.', /has "shop.", with no collection after the "."/],
    ['shop.orders,shop.', /has "shop.", with no collection after the "."/],
    ['.orders', /has ".orders", with no database before the "."/],
    ['bad/db', /invalid database name/],
    ['shop.system.views', /cannot be watched/],
    ['a.b,a.b', /twice/],
  ])('rejects %s', (raw, message) => {
    expect(() => parseWatch(raw)).toThrow(UserError);
    expect(() => parseWatch(raw)).toThrow(message);
  });

  test('a namespace without a collection is told to name the database alone', () => {
    try {
      parseWatch('shop.');
      expect.unreachable();
    } catch (error) {
      expect((error as UserError).fix).toBe(
        'write "shop" to watch the whole database, or "shop.<collection>" for one collection',
      );
    }
  });
});
