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
import type { Document } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { decodeEvent, encodeEvent, EVENT_JOB_VERSION } from '../src/index.js';
import {
  canonicalExtendedJson,
  canonicalExtendedJsonGeneral,
  decodeEventGeneral,
  fastDecodeEvent,
  fastExtendedJson,
} from '../src/codec.js';
import type { EventJobData } from '../src/index.js';

const ROUTE = { ns: 'shop.orders', op: 'update', doc: '0123456789abcdef0123456789abcdef' };

/** What BullMQ does to job data: JSON in, JSON out (through Redis). */
function throughRedis<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/**
 * The ingest reads `bytes` with the driver (BSON.deserialize with default options), encodes the
 * event, BullMQ stores it as JSON, the worker decodes it. Returns the handler's value and what the
 * driver itself produces from the same bytes.
 */
function roundTrip(document: Document): { decoded: Document; driver: Document; job: EventJobData } {
  const bytes = BSON.serialize(document);
  const job = throughRedis(encodeEvent(BSON.deserialize(bytes), ROUTE));
  return { decoded: decodeEvent(job) as Document, driver: BSON.deserialize(bytes), job };
}

/** Deep equality including classes and -0, and byte equality of the re-serialized documents. */
function expectSame(document: Document): Document {
  const { decoded, driver } = roundTrip(document);
  expect(decoded).toStrictEqual(driver);
  expect(Buffer.from(BSON.serialize(decoded)).equals(Buffer.from(BSON.serialize(driver)))).toBe(
    true,
  );
  return decoded;
}

describe('encodeEvent / decodeEvent through JSON', () => {
  it('keeps the job metadata', () => {
    const job = throughRedis(encodeEvent({ operationType: 'update' }, ROUTE));
    expect(job).toMatchObject({
      v: EVENT_JOB_VERSION,
      ns: 'shop.orders',
      op: 'update',
      doc: ROUTE.doc,
    });
    expect(throughRedis(encodeEvent({}, { ...ROUTE, doc: null })).doc).toBeNull();
  });

  it('keeps ObjectId, Date and Decimal128', () => {
    const id = new ObjectId('64b7f0c2a1b2c3d4e5f60718');
    const decoded = expectSame({
      id,
      date: new Date('2024-02-29T12:34:56.789Z'),
      epoch: new Date(0),
      before1970: new Date(-123_456),
      price: Decimal128.fromString('19.90'),
      tiny: Decimal128.fromString('1E-6176'),
      nan: Decimal128.fromString('NaN'),
      negInf: Decimal128.fromString('-Infinity'),
    });
    expect(decoded.id).toBeInstanceOf(ObjectId);
    expect((decoded.id as ObjectId).equals(id)).toBe(true);
    expect(decoded.date).toBeInstanceOf(Date);
    expect((decoded.date as Date).toISOString()).toBe('2024-02-29T12:34:56.789Z');
    expect(decoded.price).toBeInstanceOf(Decimal128);
    expect(String(decoded.price)).toBe('19.90'); // trailing zeros survive
  });

  it('keeps int32, double and int64 apart as the driver does', () => {
    const decoded = expectSame({
      int32: new Int32(5),
      double: new Double(5),
      fraction: 5.25,
      negZero: -0,
      nan: NaN,
      inf: Infinity,
      negInf: -Infinity,
      bigDouble: 2 ** 60,
      smallLong: Long.fromNumber(5),
      negLong: Long.fromNumber(-42),
      safeLong: Long.fromNumber(2 ** 53 - 1),
      bigLong: Long.fromString('9007199254740993'),
      maxLong: Long.MAX_VALUE,
    });
    // The driver promotes int32, double and int64 values that fit to number...
    expect(decoded.int32).toBe(5);
    expect(decoded.double).toBe(5);
    expect(decoded.smallLong).toBe(5);
    expect(decoded.safeLong).toBe(2 ** 53 - 1);
    expect(Object.is(decoded.negZero, -0)).toBe(true);
    expect(decoded.nan).toBeNaN();
    // ...and keeps a Long when the value would lose precision.
    expect(decoded.bigLong).toBeInstanceOf(Long);
    expect(String(decoded.bigLong)).toBe('9007199254740993');
    expect(String(decoded.maxLong)).toBe('9223372036854775807');
  });

  it('keeps Binary, UUID, Timestamp, regular expressions, MinKey, MaxKey and null', () => {
    const uuid = new UUID('0f8fad5b-d9cb-469f-a165-70867728950e');
    const decoded = expectSame({
      bin: new Binary(Buffer.from([0, 1, 2, 255]), 0),
      md5: new Binary(Buffer.alloc(16, 7), 5),
      custom: new Binary(Buffer.from('x'), 0x80),
      uuid,
      ts: new Timestamp({ t: 1_700_000_000, i: 42 }),
      re: /^ab+c$/im,
      bre: new BSONRegExp('x.y', 's'),
      min: new MinKey(),
      max: new MaxKey(),
      nothing: null,
    });
    expect(decoded.bin).toBeInstanceOf(Binary);
    expect(decoded.uuid).toBeInstanceOf(UUID);
    expect((decoded.uuid as UUID).toHexString()).toBe(uuid.toHexString());
    expect(decoded.ts).toBeInstanceOf(Timestamp);
    expect(decoded.ts).toMatchObject({ t: 1_700_000_000, i: 42 });
    expect(decoded.re).toEqual(/^ab+c$/im);
    expect(decoded.min).toBeInstanceOf(MinKey);
    expect(decoded.max).toBeInstanceOf(MaxKey);
    expect(decoded.nothing).toBeNull();
  });

  it('keeps Code, DBRef and symbols', () => {
    const decoded = expectSame({
      code: new Code('return 1'),
      scoped: new Code('return x', { x: 1 }),
      ref: new DBRef('users', new ObjectId('64b7f0c2a1b2c3d4e5f60718'), 'app'),
      sym: new BSONSymbol('s'),
    });
    expect(decoded.ref).toBeInstanceOf(DBRef);
    expect(decoded.sym).toBe('s');
  });

  it('keeps nested documents and arrays, and the order of fields', () => {
    const decoded = expectSame({
      z: 1,
      a: {
        y: [1, 'two', { three: new Int32(3) }, [Long.fromString('9007199254740993'), null]],
        b: {},
      },
      m: [],
      '1': 'an integer-like key',
      'a.b': 'a dotted key',
    });
    expect(Object.keys(decoded)).toEqual(Object.keys(BSON.deserialize(BSON.serialize(decoded))));
  });

  it('keeps a realistic update event', () => {
    const event = {
      _id: {
        _data:
          '8265A1B2C3000000012B022C0100296E5A1004ABCDEF0123456789ABCDEF0123456746645F696400646',
      },
      operationType: 'update',
      clusterTime: new Timestamp({ t: 1_705_000_000, i: 7 }),
      wallTime: new Date('2024-01-11T18:26:40.123Z'),
      ns: { db: 'shop', coll: 'orders' },
      documentKey: { _id: new ObjectId('65a1b2c3d4e5f60718293a4b') },
      updateDescription: {
        updatedFields: {
          status: 'paid',
          'items.2.qty': new Int32(3),
          total: Decimal128.fromString('120.50'),
          paidAt: new Date('2024-01-11T18:26:40.000Z'),
        },
        removedFields: ['cartToken'],
        truncatedArrays: [{ field: 'history', newSize: new Int32(10) }],
        disambiguatedPaths: {},
      },
      txnNumber: Long.fromNumber(12),
      lsid: {
        id: new UUID('0f8fad5b-d9cb-469f-a165-70867728950e'),
        uid: new Binary(Buffer.alloc(32, 1), 0),
      },
    };
    const { decoded, driver, job } = roundTrip(event);
    expect(decoded).toStrictEqual(driver);
    expect(job.event._id).toEqual({ _data: event._id._data });
    expect(decoded.clusterTime).toBeInstanceOf(Timestamp);
    expect(decoded.wallTime).toBeInstanceOf(Date);
    expect(decoded.documentKey).toEqual({ _id: new ObjectId('65a1b2c3d4e5f60718293a4b') });
    expect((decoded.updateDescription as Document).updatedFields).toMatchObject({
      'items.2.qty': 3,
    });
  });

  it('keeps an insert event with a full document', () => {
    expectSame({
      _id: { _data: '82' + 'A'.repeat(60) },
      operationType: 'insert',
      clusterTime: new Timestamp({ t: 1, i: 1 }),
      ns: { db: 'shop', coll: 'orders' },
      documentKey: { _id: 'order-1' },
      fullDocument: { _id: 'order-1', lines: [{ sku: 'a', qty: 2, price: 9.99 }], note: null },
    });
  });

  it('keeps user fields that look like Extended JSON (allowed since MongoDB 5.0)', () => {
    const decoded = expectSame({
      fullDocument: {
        price: { $numberInt: '7' },
        when: { $date: 'not a date' },
        ref: { $oid: 'not an id' },
        legacyRegex: { $regex: 'a', $options: 'i' },
        blob: { $binary: 'AAEC', $type: '00' },
        long: { $numberLong: '5' },
        $top: { $inc: 1 },
      },
    });
    expect((decoded.fullDocument as Document).price).toEqual({ $numberInt: '7' });
    expect((decoded.fullDocument as Document).when).toEqual({ $date: 'not a date' });
  });

  it('stores events as readable Extended JSON, and as BSON only when it has to', () => {
    const plain = roundTrip({
      operationType: 'insert',
      fullDocument: { n: 2 ** 60, when: new Date(0) },
    });
    expect(plain.job.bson).toBeUndefined();
    expect(plain.job.event).toEqual({
      operationType: 'insert',
      fullDocument: {
        n: { $numberDouble: '1152921504606846976.0' },
        when: { $date: { $numberLong: '0' } },
      },
    });
    const dollar = roundTrip({
      operationType: 'insert',
      fullDocument: { price: { $numberInt: '7' } },
    });
    expect(typeof dollar.job.bson).toBe('string');
    expect(dollar.job.event.operationType).toBe('insert'); // still readable
  });

  it('keeps dates outside the JavaScript range as the Invalid Dates the driver hands out', () => {
    // A BSON date of 2^62 ms (Java code writes such "forever" dates): build the bytes by hand.
    const bytes = Buffer.from(
      BSON.serialize({
        fullDocument: { until: Long.fromString('4611686018427387904'), ok: new Date(5) },
        list: [1],
      }),
    );
    const at = bytes.indexOf(Buffer.from('until\u0000')) - 1;
    expect(bytes[at]).toBe(0x12); // int64
    bytes[at] = 0x09; // UTC datetime
    const driver = BSON.deserialize(bytes);
    expect(Number.isNaN((driver.fullDocument as { until: Date }).until.getTime())).toBe(true);
    const job = throughRedis(encodeEvent(driver, ROUTE));
    const decoded = decodeEvent(job) as Document;
    const until = (decoded.fullDocument as { until: unknown }).until;
    expect(until).toBeInstanceOf(Date);
    expect(Number.isNaN((until as Date).getTime())).toBe(true);
    expect((decoded.fullDocument as { ok: Date }).ok).toEqual(new Date(5));
    expect(decoded.list).toEqual([1]);
  });

  it('still reports job data that is really broken', () => {
    const job = { ...encodeEvent({}, ROUTE), event: { when: { $date: { $numberLong: 'soon' } } } };
    expect(() => decodeEvent(throughRedis(job))).toThrow(/numberLong/);
  });

  it('keeps a field named __proto__ as data', () => {
    const document = JSON.parse(
      '{"fullDocument": {"__proto__": {"polluted": true}, "x": 1}}',
    ) as Document;
    const { decoded, driver } = roundTrip(document);
    expect(decoded).toStrictEqual(driver);
    expect(({} as { polluted?: boolean }).polluted).toBeUndefined();
  });

  it('refuses job data of another version', () => {
    const job = { ...encodeEvent({}, ROUTE), v: 2 } as unknown as EventJobData;
    expect(() => decodeEvent(job)).toThrow(
      'job data version 2 is not supported by this worker (expects 1)',
    );
  });
});

describe('one copy of BSON', () => {
  it("hands out the driver's own classes, so instanceof works in handlers", async () => {
    // `bson` has separate ESM and CommonJS builds; importing it as ESM next to the (CommonJS)
    // driver would load a second copy whose ObjectId is not the driver's ObjectId.
    const { ObjectId: EsmObjectId } = await import('bson');
    expect(EsmObjectId).not.toBe(ObjectId);
    const data = JSON.parse(
      JSON.stringify(
        encodeEvent({ _id: { _data: '82' }, documentKey: { _id: new EsmObjectId() } }, ROUTE),
      ),
    ) as EventJobData;
    const decoded = decodeEvent(data) as unknown as { documentKey: { _id: unknown } };
    expect(decoded.documentKey._id).toBeInstanceOf(ObjectId);
  });
});

describe('the fast Extended JSON writer', () => {
  // A seeded generator of driver-shaped values of every common type.
  function generator(seed: number) {
    let state = seed;
    const next = () => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state / 2 ** 32;
    };
    const leaf = (): unknown => {
      const pick = Math.floor(next() * 16);
      switch (pick) {
        case 0:
          return Math.floor(next() * 1000) - 500;
        case 1:
          return next() * 1e6 - 5e5;
        case 2:
          return [2 ** 31, -(2 ** 31) - 1, 2 ** 53, -0, 0, NaN, Infinity, -Infinity, 1e21, 5e-324][
            Math.floor(next() * 10)
          ];
        case 3:
          return `s${Math.floor(next() * 1e6)}`;
        case 4:
          return next() < 0.5;
        case 5:
          return null;
        case 6:
          return new ObjectId();
        case 7:
          return new Date(Math.floor(next() * 2e12));
        case 8:
          return Long.fromString(String(Math.floor(next() * 1e15)) + '123');
        case 9:
          return Decimal128.fromString(`${Math.floor(next() * 1e6)}.${Math.floor(next() * 100)}`);
        case 10:
          return new Timestamp({ t: Math.floor(next() * 2e9), i: Math.floor(next() * 100) });
        case 11:
          return new UUID();
        case 12:
          // (subtype 2, the old byte array, is left to the general reader; a 4-byte subtype 4
          // is not a UUID, and the general reader cannot read it back: see the test below)
          return new Binary(
            Buffer.from([1, 2, 3, Math.floor(next() * 255)]),
            [0, 1, 3, 5, 6, 128][Math.floor(next() * 6)],
          );
        case 13:
          return new Int32(Math.floor(next() * 1000));
        case 14:
          return new Double(Math.floor(next() * 1000));
        default:
          return [new MinKey(), new MaxKey()][Math.floor(next() * 2)];
      }
    };
    const value = (depth: number): unknown => {
      const roll = next();
      if (depth > 3 || roll < 0.5) return leaf();
      if (roll < 0.7) return Array.from({ length: Math.floor(next() * 4) }, () => value(depth + 1));
      const doc: Record<string, unknown> = {};
      for (let i = 0; i < Math.floor(next() * 5); i += 1) doc[`f${i}`] = value(depth + 1);
      return doc;
    };
    return () => ({
      _id: { _data: '82' },
      operationType: 'update',
      fullDocument: value(0),
      extra: value(0),
    });
  }

  it('reads back exactly what the general reader reads, for 2,000 random events', () => {
    const make = generator(11);
    for (let i = 0; i < 2000; i += 1) {
      const data = JSON.parse(JSON.stringify(encodeEvent(make(), ROUTE))) as EventJobData;
      expect(
        fastDecodeEvent(data.event),
        'the fast reader handles every common type',
      ).not.toBeNull();
      expect(decodeEvent(data)).toStrictEqual(decodeEventGeneral(data));
    }
  });

  it('writes exactly what the general path writes, for 2,000 random driver values', () => {
    const make = generator(7);
    for (let i = 0; i < 2000; i += 1) {
      const event = make();
      const fast = fastExtendedJson(event);
      const general = canonicalExtendedJsonGeneral(event);
      expect(fast, 'the fast writer handles every common type').not.toBeNull();
      expect(canonicalExtendedJson(event)).toEqual(general);
      expect(JSON.stringify(fast)).toBe(JSON.stringify(general.json));
    }
  });

  it('reads a subtype-4 binary that is not 16 bytes long as the driver does (a Binary, not a UUID)', () => {
    const odd = new Binary(Buffer.from([1, 2, 3]), 4);
    const data = JSON.parse(
      JSON.stringify(encodeEvent({ _id: { _data: '82' }, odd }, ROUTE)),
    ) as EventJobData;
    const driver = BSON.deserialize(BSON.serialize({ _id: { _data: '82' }, odd }));
    expect(decodeEvent(data)).toStrictEqual(driver);
  });
});
