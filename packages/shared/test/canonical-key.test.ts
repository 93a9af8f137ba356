import {
  Binary,
  BSON,
  BSONRegExp,
  BSONSymbol,
  Code,
  DBRef,
  Decimal128,
  Double,
  Int32,
  Long,
  MaxKey,
  MinKey,
  ObjectId,
  Timestamp,
  UUID,
} from 'mongodb';
import { describe, expect, it } from 'vitest';
import { canonicalKey, documentIdentity, Router } from '../src/index.js';

const OID = '64b7f0c2a1b2c3d4e5f60718';
const UUID_HEX = '0f8fad5b-d9cb-469f-a165-70867728950e';
const uuidBytes = Buffer.from(UUID_HEX.replace(/-/g, ''), 'hex');

/** A double NaN with a payload other than the default one. */
function otherNaN(): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setUint32(0, 0xfff80000);
  view.setUint32(4, 0x00000123);
  return view.getFloat64(0);
}

function nullPrototype(entries: Record<string, unknown>): Record<string, unknown> {
  return Object.assign(Object.create(null) as Record<string, unknown>, entries);
}

/**
 * Groups of `_id` values that MongoDB's `_id` index treats as one key. Values in distinct groups
 * are distinct keys.
 */
const GROUPS: Record<string, unknown[]> = {
  one: [
    1,
    1.0,
    new Int32(1),
    Long.fromNumber(1),
    Long.fromNumber(1, true),
    new Double(1),
    1n,
    Decimal128.fromString('1'),
    Decimal128.fromString('1.00'),
    Decimal128.fromString('0.001E3'),
    Decimal128.fromString('100E-2'),
  ],
  zero: [
    0,
    -0,
    new Double(-0),
    new Int32(0),
    Long.ZERO,
    0n,
    Decimal128.fromString('0'),
    Decimal128.fromString('-0'),
    Decimal128.fromString('0E-10'),
    Decimal128.fromString('-0.000E+5'),
  ],
  NaN: [
    NaN,
    new Double(NaN),
    otherNaN(),
    Decimal128.fromString('NaN'),
    Decimal128.fromString('-NaN'),
  ],
  '+Infinity': [Infinity, new Double(Infinity), Decimal128.fromString('Infinity')],
  '-Infinity': [-Infinity, new Double(-Infinity), Decimal128.fromString('-Infinity')],
  'minus one': [
    -1,
    new Int32(-1),
    Long.fromNumber(-1),
    -1n,
    Decimal128.fromString('-1.0'),
    Long.fromString('18446744073709551615', true),
  ],
  two: [2, Long.fromNumber(2), Decimal128.fromString('2')],
  'double 0.1': [0.1, new Double(0.1)],
  'decimal 0.1': [
    Decimal128.fromString('0.1'),
    Decimal128.fromString('0.10'),
    Decimal128.fromString('1E-1'),
  ],
  'one half': [0.5, new Double(0.5), Decimal128.fromString('0.500'), Decimal128.fromString('5E-1')],
  'minus 1.5': [-1.5, Decimal128.fromString('-1.50')],
  '2^53': [
    2 ** 53,
    new Double(2 ** 53),
    Long.fromString('9007199254740992'),
    2n ** 53n,
    Decimal128.fromString('9007199254740992'),
  ],
  '2^53 + 1': [
    Long.fromString('9007199254740993'),
    2n ** 53n + 1n,
    Decimal128.fromString('9007199254740993'),
  ],
  'int64 max': [Long.MAX_VALUE, 2n ** 63n - 1n, Decimal128.fromString('9223372036854775807')],
  'int64 min': [
    Long.MIN_VALUE,
    -(2n ** 63n),
    -(2 ** 63),
    Decimal128.fromString('-9223372036854775808'),
  ],
  '2^63 (a double, not an int64)': [2 ** 63, Decimal128.fromString('9223372036854775808')],
  'double 1e300': [1e300],
  'decimal 1E300': [Decimal128.fromString('1E+300')],
  'smallest subnormal double': [Number.MIN_VALUE],
  'largest double': [Number.MAX_VALUE],
  'decimal 1E-6176': [Decimal128.fromString('1E-6176')],
  'string abc': ['abc', new BSONSymbol('abc')],
  'string ABC': ['ABC'],
  'string "abc "': ['abc '],
  'empty string': [''],
  'string "1"': ['1'],
  'string é (precomposed)': ['\u00e9'],
  'string é (decomposed)': ['e\u0301'],
  'string emoji': ['\u{1F600}'],
  'string with NUL': ['a\u0000b'],
  ObjectId: [
    new ObjectId(OID),
    ObjectId.createFromHexString(OID),
    new ObjectId(Buffer.from(OID, 'hex')),
  ],
  'ObjectId hex string': [OID],
  'other ObjectId': [new ObjectId('64b7f0c2a1b2c3d4e5f60719')],
  'Date 0': [new Date(0), new Date('1970-01-01T00:00:00.000Z')],
  'Date 1.5s': [new Date(1500)],
  'Date before 1970': [new Date(-1)],
  'Timestamp 0,0': [new Timestamp({ t: 0, i: 0 })],
  'Timestamp 1,2': [new Timestamp({ t: 1, i: 2 }), Timestamp.fromBits(2, 1)],
  'Timestamp 2,1': [new Timestamp({ t: 2, i: 1 })],
  'Timestamp max': [new Timestamp({ t: 0xffffffff, i: 0xffffffff })],
  true: [true],
  false: [false],
  null: [null, undefined],
  MinKey: [new MinKey()],
  MaxKey: [new MaxKey()],
  UUID: [new UUID(UUID_HEX), new Binary(uuidBytes, 4), UUID.createFromHexString(UUID_HEX)],
  'same bytes, subtype 0': [
    new Binary(uuidBytes, 0),
    new Binary(uuidBytes),
    uuidBytes,
    new Uint8Array(uuidBytes),
  ],
  'same bytes, subtype 3': [new Binary(uuidBytes, 3)],
  'empty binary': [new Binary(Buffer.alloc(0))],
  'regex /ab/i': [/ab/i, new BSONRegExp('ab', 'i')],
  'regex /ab/': [/ab/, new BSONRegExp('ab', '')],
  'regex /ab/im': [/ab/im, /ab/im, new BSONRegExp('ab', 'im'), new BSONRegExp('ab', 'mi')],
  'regex /ab/g (bson writes g as s)': [/ab/g, new BSONRegExp('ab', 's')],
  'regex /ab/x': [new BSONRegExp('ab', 'x')],
  'regex /a/': [/a/],
  'document {a: 1, b: 2}': [
    { a: 1, b: 2 },
    { a: Long.fromNumber(1), b: Decimal128.fromString('2.0') },
    { a: new Int32(1), b: new Double(2) },
    new Map<string, unknown>([
      ['a', 1],
      ['b', 2],
    ]),
    nullPrototype({ a: 1, b: 2 }),
  ],
  'document {b: 2, a: 1}': [{ b: 2, a: 1 }],
  'document {a: 1}': [{ a: 1 }, { a: 1.0 }],
  'document {a: null}': [{ a: null }, { a: undefined }],
  'document {a: 1, b: null}': [{ a: 1, b: null }],
  'document {a: "1"}': [{ a: '1' }, { a: new BSONSymbol('1') }],
  'document {A: 1}': [{ A: 1 }],
  'empty document': [{}],
  'document {a: {}}': [{ a: {} }],
  'document {a: []}': [{ a: [] }],
  'document {a: [1, "x"]}': [{ a: [1, 'x'] }, { a: [Long.fromNumber(1), new BSONSymbol('x')] }],
  'document {a: ["x", 1]}': [{ a: ['x', 1] }],
  'document {a: [1]}': [{ a: [1] }],
  'document {a: [[1]]}': [{ a: [[1]] }],
  'document {a: "bc"}': [{ a: 'bc' }],
  'document {ab: "c"}': [{ ab: 'c' }],
  'array ["a", "bc"]': [['a', 'bc']],
  'array ["ab", "c"]': [['ab', 'c']],
  'nested document': [
    { k: { x: new ObjectId(OID), y: [new Date(5), { z: true }] } },
    { k: { x: ObjectId.createFromHexString(OID), y: [new Date(5), { z: true }] } },
  ],
  DBRef: [new DBRef('c', new ObjectId(OID)), { $ref: 'c', $id: new ObjectId(OID) }],
  'DBRef with db': [
    new DBRef('c', 1 as unknown as ObjectId, 'db'),
    { $ref: 'c', $id: 1, $db: 'db' },
  ],
  'Code x': [new Code('x')],
  'Code x with scope {}': [new Code('x', {})],
  'Code x with scope {a: 1}': [new Code('x', { a: 1 }), new Code('x', { a: Long.fromNumber(1) })],
};

const hex = (value: unknown) => canonicalKey(value).toString('hex');

describe('canonicalKey', () => {
  it.each(Object.entries(GROUPS))(
    'gives every value of the group "%s" the same key',
    (_, values) => {
      const first = hex(values[0]);
      for (const value of values) expect(hex(value)).toBe(first);
    },
  );

  it('gives values of distinct groups distinct keys', () => {
    const seen = new Map<string, string>();
    for (const [group, values] of Object.entries(GROUPS)) {
      const key = hex(values[0]);
      expect(seen.get(key), `"${group}" has the key of "${seen.get(key)}"`).toBeUndefined();
      seen.set(key, group);
    }
    expect(seen.size).toBe(Object.keys(GROUPS).length);
  });

  it('writes exact decimal values: a double is never rounded to a shorter decimal', () => {
    // If doubles were converted through their shortest string ("0.1"), these would collide.
    expect(hex(0.1)).not.toBe(hex(Decimal128.fromString('0.1')));
    // The closest a Decimal128 (34 digits) gets to the double 0.1 is still not equal to it.
    expect(hex(0.1)).not.toBe(hex(Decimal128.fromString('0.1000000000000000055511151231257827')));
    expect(hex(0.1 + 0.2)).not.toBe(hex(0.3));
    expect(hex(1e300)).not.toBe(hex(Decimal128.fromString('1E+300')));
    // 2^-1 .. 2^-10 are exact in both.
    expect(hex(2 ** 100)).toBe(hex(Decimal128.fromString('1267650600228229401496703205376')));
    expect(hex(-(2 ** -20))).toBe(hex(Decimal128.fromString('-9.5367431640625E-7')));
    for (let k = 1; k <= 10; k++) {
      expect(hex(2 ** -k)).toBe(hex(Decimal128.fromString((2 ** -k).toFixed(k))));
    }
  });

  it('keeps int64 values beyond 2^53 exact', () => {
    const a = Long.fromString('9007199254740993');
    const b = Long.fromString('9007199254740992');
    expect(hex(a)).not.toBe(hex(b));
    expect(hex(Long.fromString('9223372036854775806'))).not.toBe(hex(Long.MAX_VALUE));
    // The double nearest to 2^53 + 1 is 2^53: it must not equal the int64 2^53 + 1.
    expect(hex(Number('9007199254740993'))).toBe(hex(b));
    expect(hex(Number('9007199254740993'))).not.toBe(hex(a));
  });

  it('tags the type class, so equal-looking values of distinct classes differ', () => {
    const pairs: [unknown, unknown][] = [
      ['1', 1],
      [true, 1],
      [false, 0],
      [null, 0],
      [null, ''],
      [new Date(0), new Timestamp({ t: 0, i: 0 })],
      [new Date(0), 0],
      [OID, new ObjectId(OID)],
      [new Code('x'), 'x'],
      [[1], 1],
      [{ 0: 1 }, [1]],
      [new MinKey(), null],
      [new MaxKey(), new MinKey()],
      [/ab/, 'ab'],
      [uuidBytes, uuidBytes.toString('hex')],
    ];
    for (const [a, b] of pairs) expect(hex(a)).not.toBe(hex(b));
  });

  it('is prefix-free: concatenated parts cannot collide', () => {
    expect(hex({ a: 'b', c: 'd' })).not.toBe(hex({ a: 'b\u0000\u0000\u0000\u0001c' }));
    expect(hex(['', ''])).not.toBe(hex(['']));
    expect(hex({ '': '' })).not.toBe(hex({}));
  });

  it('rejects values that cannot be BSON, with a clear message', () => {
    class Point {
      constructor(readonly x: number) {}
    }
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const cases: [unknown, RegExp][] = [
      [() => 1, /_id is a function/],
      [Symbol('s'), /_id is a symbol/],
      [new Point(1), /_id is an instance of Point, which is not a BSON value/],
      [Promise.resolve(1), /instance of Promise/],
      [new Float64Array(2), /instance of Float64Array/],
      [new WeakMap(), /instance of WeakMap/],
      [{ a: { b: () => 1 } }, /_id\.a\.b is a function/],
      [{ a: [1, Symbol('x')] }, /_id\.a\[1\] is a symbol/],
      [new Date(NaN), /an invalid Date/],
      [cyclic, /cyclic structure/],
      [2n ** 63n, /outside the int64 range/],
      [-(2n ** 63n) - 1n, /outside the int64 range/],
      [new Map<unknown, unknown>([[1, 'x']]), /a number, not a string/],
      [{ 'a\u0000b': 1 }, /NUL character/],
    ];
    for (const [value, message] of cases) {
      expect(() => canonicalKey(value)).toThrow(TypeError);
      expect(() => canonicalKey(value)).toThrow(message);
      expect(() => canonicalKey(value)).toThrow(/^cannot route by this _id: /);
    }
    let deep: unknown = 1;
    for (let i = 0; i < 300; i++) deep = { d: deep };
    expect(() => canonicalKey(deep)).toThrow(/nested more than 200 levels/);
  });

  it('accepts the same value twice in one document (shared, not cyclic)', () => {
    const shared = { x: 1 };
    expect(hex({ a: shared, b: shared })).toBe(hex({ a: { x: 1 }, b: { x: 1 } }));
  });
});

describe('documentIdentity', () => {
  it('is a 32-digit hex string, equal for every value of a group, distinct across groups', () => {
    const seen = new Set<string>();
    for (const values of Object.values(GROUPS)) {
      const identity = documentIdentity('shop.orders', values[0]);
      expect(identity).toMatch(/^[0-9a-f]{32}$/);
      for (const value of values) expect(documentIdentity('shop.orders', value)).toBe(identity);
      expect(seen.has(identity)).toBe(false);
      seen.add(identity);
    }
  });

  it('depends on the namespace, without ambiguity between namespace and key', () => {
    expect(documentIdentity('shop.orders', 1)).not.toBe(documentIdentity('shop.items', 1));
    expect(documentIdentity('a', 'bc')).not.toBe(documentIdentity('ab', 'c'));
    expect(() => documentIdentity(42 as unknown as string, 1)).toThrow(
      /namespace must be a string/,
    );
  });
});

describe('routing equal values', () => {
  const routers = [
    new Router(['alpha', 'bravo', 'charlie']),
    new Router(['Tom', 'Dick', 'Harry']),
    new Router(['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7']),
  ];

  it('sends every value of a group to one worker', () => {
    for (const values of Object.values(GROUPS)) {
      for (const router of routers) {
        const owner = router.route('db.coll', values[0]);
        for (const value of values) expect(router.route('db.coll', value)).toBe(owner);
      }
    }
  });
});

describe('the driver round trip', () => {
  // What the driver hands out: BSON.deserialize with its default options (Long promoted to
  // number when safe, Int32 and Double to number, subtype 4 Binary to UUID, symbol to string,
  // regex to RegExp). The driver serializes with ignoreUndefined: false.
  const roundTrip = (value: unknown, options?: BSON.DeserializeOptions) =>
    BSON.deserialize(BSON.serialize({ _id: value }, { ignoreUndefined: false }), options)
      ._id as unknown;

  // JavaScript's RegExp has no x, l or u option of BSON's: the driver's default deserializer
  // drops them (bsonRegExp: true keeps them). See the test below.
  const LOSSY = 'regex /ab/x';
  const values = Object.entries(GROUPS)
    .filter(([group]) => group !== LOSSY)
    .flatMap(([group, members]) =>
      members.map((value, index) => [`${group} #${index + 1}`, value] as const),
    );

  it.each(values)('keeps the key and the route of %s', (_, value) => {
    const router = new Router(['alpha', 'bravo', 'charlie']);
    const key = hex(value);
    const route = router.route('shop.orders', value);
    for (const options of [
      undefined,
      { promoteValues: false },
      { promoteLongs: false },
      { useBigInt64: true },
      { bsonRegExp: true },
    ]) {
      const back = roundTrip(value, options);
      expect(hex(back)).toBe(key);
      expect(router.route('shop.orders', back)).toBe(route);
    }
  });

  it('keeps BSON-only regex options only with bsonRegExp: true (a driver limitation)', () => {
    const value = new BSONRegExp('ab', 'x');
    expect(hex(roundTrip(value, { bsonRegExp: true }))).toBe(hex(value));
    // The default deserializer returns /ab/ without the x: one document, read with the same
    // options every time, still always gets the same key.
    expect(roundTrip(value)).toEqual(/ab/);
    expect(hex(roundTrip(value))).toBe(hex(/ab/));
  });

  it('really changes the JavaScript values (the test above is not vacuous)', () => {
    expect(roundTrip(Long.fromNumber(5))).toBe(5);
    expect(roundTrip(new Int32(5), { promoteValues: false })).toBeInstanceOf(Int32);
    expect(roundTrip(5, { useBigInt64: true })).toBe(5);
    expect(roundTrip(Long.fromNumber(5), { useBigInt64: true })).toBe(5n);
    expect(roundTrip(new Binary(uuidBytes, 4))).toBeInstanceOf(UUID);
    expect(roundTrip(new BSONSymbol('x'))).toBe('x');
    expect(roundTrip(new BSONRegExp('ab', 's'))).toEqual(/ab/g);
    expect(roundTrip(uuidBytes)).toBeInstanceOf(Binary);
    expect(roundTrip(new DBRef('c', 1 as unknown as ObjectId))).toBeInstanceOf(DBRef);
    expect(roundTrip({ $ref: 'c', $id: 1 })).toBeInstanceOf(DBRef);
  });
});
