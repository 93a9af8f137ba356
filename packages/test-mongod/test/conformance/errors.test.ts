// Bad input answers MongoDB's error shape ({ok: 0, errmsg, code, codeName}) and never drops
// the connection or the process; a malformed wire message closes only its own connection
// (manual: Error Codes; MongoDB Wire Protocol).
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MongoServerError } from 'mongodb';
import type { Db, MongoClient } from 'mongodb';
import { startTarget, uniqueDb } from '../helpers/target.js';
import type { Target } from '../helpers/target.js';

let target: Target;
let client: MongoClient;
let db: Db;

beforeAll(async () => {
  target = await startTarget();
  client = await target.client();
  db = client.db(uniqueDb('errors'));
  await db.collection('c').insertOne({ a: 1 });
});
afterAll(async () => {
  await db.dropDatabase().catch(() => undefined);
  await target.stop();
});

async function fails(cmd: Record<string, unknown>): Promise<MongoServerError> {
  const err = await db.command(cmd).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(MongoServerError);
  const e = err as MongoServerError;
  expect(typeof e.message).toBe('string');
  expect(typeof e.code).toBe('number');
  expect(typeof e.codeName).toBe('string');
  return e;
}

describe('error replies', () => {
  it('unknown query operator is BadValue (2)', async () => {
    expect((await fails({ find: 'c', filter: { a: { $bogus: 1 } } })).code).toBe(2);
    expect((await fails({ find: 'c', filter: { $bogus: 1 } })).code).toBe(2);
  });

  it('unknown pipeline stage is 40324', async () => {
    expect((await fails({ aggregate: 'c', pipeline: [{ $bogus: {} }], cursor: {} })).code).toBe(
      40324,
    );
  });

  it('wrong types are TypeMismatch (14) or a parse error', async () => {
    const e = await fails({ find: 'c', filter: 'not a document' });
    expect([14, 9]).toContain(e.code);
  });

  it('aggregate without cursor is FailedToParse (9)', async () => {
    expect((await fails({ aggregate: 'c', pipeline: [] })).code).toBe(9);
  });

  it('getMore on an unknown cursor is CursorNotFound (43)', async () => {
    const { Long } = await import('mongodb');
    expect((await fails({ getMore: Long.fromNumber(123456789), collection: 'c' })).code).toBe(43);
  });

  it('invalid update modifiers fail the statement', async () => {
    const err = await db
      .collection('c')
      .updateOne({}, { $bogus: { a: 1 } } as never)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MongoServerError);
  });

  it('a malformed message closes only that connection', async () => {
    const url = new URL(target.uri);
    const sock = net.connect(Number(url.port), url.hostname);
    await new Promise<void>((r) => sock.once('connect', () => r()));
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    const garbage = Buffer.alloc(32, 0xff);
    garbage.writeInt32LE(32, 0);
    garbage.writeInt32LE(2013, 12);
    sock.write(garbage);
    await closed;
    expect((await db.command({ ping: 1 })).ok).toBe(1);
    expect(await db.collection('c').countDocuments()).toBe(1);
  });
});
