// startMongo({ auth }) starts the test server with access control, for tests of other packages
// that need credentials: the URI it returns authenticates; without them, commands are refused.
import { readFileSync } from 'node:fs';
import { MongoClient, MongoServerError } from 'mongodb';
import { afterAll, expect, test } from 'vitest';
import { startMongo, type RunningMongo } from '../src/index.js';

const PASSWORD = 'p/a@s:s%w0rd';
let mongo: RunningMongo | undefined;

afterAll(async () => {
  await mongo?.stop();
});

async function refusal(p: Promise<unknown>): Promise<unknown> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MongoServerError);
  return (err as MongoServerError).code;
}

test('auth: the URI carries the credentials, others are refused, the password stays off ps', async () => {
  mongo = await startMongo({ auth: { user: 'app', password: PASSWORD } });
  expect(mongo.uri).toContain(`app:${encodeURIComponent(PASSWORD)}@127.0.0.1:`);
  expect(mongo.uri).toMatch(/[?&]authSource=admin/);
  expect(readFileSync(`/proc/${mongo.pid}/cmdline`, 'utf8')).not.toContain('s%w0rd');

  const client = new MongoClient(mongo.uri);
  await client.db('t').collection('c').insertOne({ ok: 1 });
  expect(await client.db('t').collection('c').countDocuments()).toBe(1);
  await client.close();

  const url = new URL(mongo.uri);
  const anonymous = new MongoClient(`mongodb://${url.host}/?directConnection=true`);
  expect(await refusal(anonymous.db('t').collection('c').findOne({}))).toBe(13);
  await anonymous.close();
  const wrong = new MongoClient(mongo.uri.replace(encodeURIComponent(PASSWORD), 'wrong'));
  expect(await refusal(wrong.connect())).toBe(18);
  await wrong.close();

  // A restart (same data folder) keeps access control and the user.
  await mongo.restart();
  const again = new MongoClient(mongo.uri);
  expect(await again.db('t').collection('c').countDocuments()).toBe(1);
  await again.close();
}, 60_000);
