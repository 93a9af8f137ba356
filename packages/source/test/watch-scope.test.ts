import { describe, expect, test } from 'vitest';
import { UserError } from '@changeq/shared';
import {
  describeScope,
  inScope,
  parseExclude,
  parseWatch,
  scopeMatch,
  singleDatabase,
} from '../src/watch-scope.js';

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

describe('WATCH patterns and EXCLUDE', () => {
  test('db.*, *.coll and /regex/ (commas inside it kept) make a patterns scope, filtered on the server', () => {
    const scope = parseWatch('shop.*, *.orders, /^logs\\.app_\\d{2,4}$/i, crm.people');
    expect(scope).toEqual({
      kind: 'patterns',
      patterns: [
        { kind: 'database', db: 'shop' },
        { kind: 'collection', coll: 'orders' },
        { kind: 'regex', source: '^logs\\.app_\\d{2,4}$', flags: 'i' },
        { kind: 'exact', db: 'crm', coll: 'people' },
      ],
      excludeDbs: ['admin', 'local', 'config'],
    });
    const match = scopeMatch(scope)!;
    expect(match.$and[0]).toEqual({ 'ns.db': { $nin: ['admin', 'local', 'config'] } });
    expect(match.$and[1].$or).toContainEqual({
      $expr: {
        $regexMatch: {
          input: { $concat: ['$ns.db', '.', '$ns.coll'] },
          regex: '^logs\\.app_\\d{2,4}$',
          options: 'i',
        },
      },
    });
    expect(match.$and[1].$or).toContainEqual({ 'to.coll': 'orders' });
    expect(singleDatabase(scope)).toBeNull();
    expect(singleDatabase(parseWatch('shop.*,shop.x'))).toBe('shop');
    for (const [db, coll, wanted] of [
      ['shop', 'anything', true],
      ['crm', 'orders', true],
      ['logs', 'APP_2026', true],
      ['logs', 'app_1', false],
      ['crm', 'people', true],
      ['crm', 'leads', false],
      ['admin', 'orders', false],
    ] as const) {
      expect(inScope(scope, db, coll), `${db}.${coll}`).toBe(wanted);
    }
    expect(describeScope(scope)).toBe(
      'namespaces matching shop.*, *.orders, /^logs\\.app_\\d{2,4}$/i, crm.people',
    );
  });

  test('EXCLUDE leaves namespaces out of the deployment, a database or patterns', () => {
    const exclude = parseExclude('shop.audit, *.tmp, /^shop\\.cache_/');
    const deployment = parseWatch('', [], exclude);
    expect(scopeMatch(deployment)).toEqual({
      $and: [
        { 'ns.db': { $nin: ['admin', 'local', 'config'] } },
        {
          $nor: [
            { 'ns.db': 'shop', 'ns.coll': 'audit' },
            { 'ns.db': 'shop', operationType: 'dropDatabase' },
            { 'ns.coll': 'tmp' },
            {
              $expr: {
                $regexMatch: {
                  input: { $concat: ['$ns.db', '.', '$ns.coll'] },
                  regex: '^shop\\.cache_',
                  options: '',
                },
              },
            },
          ],
        },
      ],
    });
    const database = parseWatch('shop', [], exclude);
    expect(inScope(database, 'shop', 'orders')).toBe(true);
    expect(inScope(database, 'shop', 'audit')).toBe(false);
    expect(inScope(database, 'shop', 'cache_1')).toBe(false);
    expect(inScope(database, 'shop', 'x.tmp')).toBe(true);
    expect(inScope(database, 'shop', 'tmp')).toBe(false);
    expect(describeScope(database)).toBe(
      'database shop, excluding shop.audit, *.tmp, /^shop\\.cache_/',
    );
    expect(parseExclude('')).toEqual([]);
  });

  test.each([
    ['shop.ord*', /uses "\*" where changeq takes only "db\.\*" and "\*\.coll"/],
    ['*.*', /uses "\*"/],
    ['/[/', /is not a regular expression/],
    ['/abc', /does not close/],
    ['/a/g', /has the flag "g"/],
    ['//', /empty regular expression/],
    ['bad/db.*', /invalid database name/],
  ])('WATCH refuses %s', (raw, message) => {
    expect(() => parseWatch(raw)).toThrow(UserError);
    expect(() => parseWatch(raw)).toThrow(message);
  });

  test.each([
    ['shop', /"shop", which is not db\.coll/],
    ['a.b,,b.c', /empty entry/],
    ['/(/', /not a regular expression/],
  ])('EXCLUDE refuses %s', (raw, message) => {
    expect(() => parseExclude(raw)).toThrow(UserError);
    expect(() => parseExclude(raw)).toThrow(message);
  });

  test('EXCLUDE with a list of namespaces has nothing to exclude from', () => {
    expect(() => parseWatch('a.b,a.c', [], parseExclude('a.c'))).toThrow(/nothing to exclude/);
  });
});
