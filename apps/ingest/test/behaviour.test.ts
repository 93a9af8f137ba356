import { Redis } from 'ioredis';
import { MongoClient, Timestamp } from 'mongodb';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startMongo, startStack, type RunningMongo, type RunningStack } from '@changeq/stack';
import { PositionStore, ingestKeys } from '@changeq/store';
import { RecordingConsumer } from './chaos.js';
import {
  endProcesses,
  freePort,
  isolatedPrefix,
  waitFor,
  workersFile,
  type TestProcess,
} from '@changeq/testkit';
import { readQueues, startIngest, storedToken } from './helpers.js';

const WORKERS = ['alpha', 'bravo', 'charlie'];

let stack: RunningStack;
let mongo: MongoClient;
/** A fresh prefix, ingest id and database per test, so tests sharing the servers never meet. */
function isolated(extra: Record<string, string> = {}) {
  const prefix = isolatedPrefix('b');
  return {
    MONGODB_URI: stack.mongodbUri,
    REDIS_URL: stack.redisUrl,
    WORKERS_FILE: workersFile(`workers = ["alpha", "bravo", "charlie"]\n`),
    QUEUE_PREFIX: prefix,
    INGEST_ID: `t-${prefix}`,
    MAX_AWAIT_TIME_MS: '100',
    ...extra,
  };
}

const run = startIngest;

async function jobsOf(env: Record<string, string>) {
  return readQueues(env.REDIS_URL!, env.QUEUE_PREFIX!, WORKERS);
}

const logged = (ingest: TestProcess, text: string) => () => ingest.output().includes(text);

/** Waits for a log line; on timeout the error carries the end of the ingest's log. */
async function waitForLog(ingest: TestProcess, text: string, what: string): Promise<void> {
  await waitFor(logged(ingest, text), what).catch((error: Error) => {
    throw new Error(`${error.message}\n--- ingest log ---\n${ingest.output().slice(-4000)}`);
  });
}

beforeAll(async () => {
  stack = await startStack();
  mongo = new MongoClient(stack.mongodbUri);
  await mongo.connect();
});
afterAll(async () => {
  await mongo?.close();
  await stack?.stop();
});

describe('the ingest', () => {
  test('routes each document event to one queue and namespace events to all, with readable job names', async () => {
    const env = isolated({ WATCH: 'routing' });
    const ingest = run(env);
    await waitForLog(ingest, 'change stream open', 'the ingest to open its stream');
    const coll = mongo.db('routing').collection('items');
    await coll.insertMany(Array.from({ length: 30 }, (_, i) => ({ _id: i, v: i }) as never));
    await coll.updateOne({ _id: 7 } as never, { $set: { v: 'seven' } });
    await coll.drop();
    await waitFor(async () => (await jobsOf(env)).length === 30 + 1 + 3, '34 jobs');
    const jobs = await jobsOf(env);
    const byDoc = new Map<string, Set<string>>();
    for (const job of jobs.filter((j) => j.data.doc !== null)) {
      byDoc.set(job.data.doc!, (byDoc.get(job.data.doc!) ?? new Set()).add(job.queue));
    }
    expect([...byDoc.values()].every((queues) => queues.size === 1)).toBe(true);
    expect(new Set(jobs.filter((j) => j.data.doc !== null).map((j) => j.queue)).size).toBe(3);
    const drops = jobs.filter((j) => j.event.operationType === 'drop');
    expect(drops.map((j) => j.queue).sort()).toEqual(WORKERS);
    const update = jobs.find((j) => j.event.operationType === 'update')!;
    expect(update.event).toMatchObject({
      ns: { db: 'routing', coll: 'items' },
      documentKey: { _id: 7 },
    });
    const queue = update.queue;
    const names = jobs.filter((j) => j.queue === queue).map((j) => j.data.op);
    // the update of document 7 comes after its insert in the same queue
    const doc7 = jobs.filter((j) => j.data.doc === update.data.doc).map((j) => j.data.op);
    expect(doc7).toEqual(['insert', 'update']);
    expect(names[names.length - 1]).toBe('drop');
  });

  test('EXPANDED_EVENTS=true enqueues DDL events (create, createIndexes, modify, dropIndexes) to every worker, in order; by default there are none', async () => {
    const expanded = isolated({ WATCH: 'ddl', EXPANDED_EVENTS: 'true' });
    const plain = isolated({ WATCH: 'ddl' });
    const ingests = [run(expanded), run(plain)];
    try {
      for (const ingest of ingests) {
        await waitForLog(ingest, 'change stream open', 'the ingest to open its stream');
      }
      const db = mongo.db('ddl');
      const coll = await db.createCollection('items');
      await coll.insertMany(Array.from({ length: 6 }, (_, i) => ({ _id: i }) as never));
      await coll.createIndex({ v: 1 }, { name: 'v_1' });
      await db.command({ collMod: 'items', validationLevel: 'moderate' });
      await coll.dropIndex('v_1');
      await coll.insertOne({ _id: 99 } as never);
      const ddl = ['create', 'createIndexes', 'modify', 'dropIndexes'];
      await waitFor(
        async () => (await jobsOf(expanded)).length === 7 + ddl.length * WORKERS.length,
        'the DDL events in every queue',
      );
      await waitFor(async () => (await jobsOf(plain)).length === 7, 'the 7 inserts');
      const jobs = await jobsOf(expanded);
      // Each queue: its documents' events and every DDL event, in oplog order.
      const written = ['create', ...[0, 1, 2, 3, 4, 5].map((id) => `insert ${id}`)];
      written.push('createIndexes', 'modify', 'dropIndexes', 'insert 99');
      const describe = (j: (typeof jobs)[number]) =>
        j.data.doc === null
          ? j.data.op
          : `${j.data.op} ${String((j.event as { documentKey: { _id: unknown } }).documentKey._id)}`;
      for (const worker of WORKERS) {
        const seen = jobs.filter((j) => j.queue === worker).map(describe);
        expect(seen).toEqual(written.filter((w) => seen.includes(w)));
        expect(seen.filter((w) => ddl.includes(w))).toEqual(ddl);
      }
      expect(jobs.filter((j) => ddl.includes(j.data.op)).every((j) => j.data.doc === null)).toBe(
        true,
      );
      const index = jobs.find((j) => j.data.op === 'createIndexes')!;
      expect(index.event).toMatchObject({ ns: { db: 'ddl', coll: 'items' } });
      expect((await jobsOf(plain)).every((j) => j.data.op === 'insert')).toBe(true);
    } finally {
      await endProcesses(ingests);
    }
  });

  test('PIPELINE stages run on the server after the scope and MATCH: a redacted field never reaches Redis', async () => {
    const env = isolated({
      WATCH: 'redact.people',
      MATCH: '{"operationType": {"$ne": "delete"}}',
      PIPELINE: JSON.stringify([
        { $unset: ['fullDocument.ssn'] },
        { $set: { 'fullDocument.region': 'eu' } },
      ]),
    });
    const ingest = run(env);
    await waitForLog(ingest, 'change stream open', 'the ingest to open its stream');
    const people = mongo.db('redact').collection('people');
    await people.insertMany([
      { _id: 1, name: 'Ada', ssn: '078-05-1120' },
      { _id: 2, name: 'Alan', ssn: '219-09-9999' },
    ] as never[]);
    await people.deleteOne({ _id: 1 } as never);
    await people.insertOne({ _id: 3, name: 'Grace', ssn: '457-55-5462' } as never);
    await waitFor(async () => (await jobsOf(env)).length === 3, 'the three inserts');
    const jobs = await jobsOf(env);
    expect(jobs.map((j) => j.data.op)).toEqual(['insert', 'insert', 'insert']);
    for (const job of jobs) {
      const full = (job.event as { fullDocument: Record<string, unknown> }).fullDocument;
      expect(full).not.toHaveProperty('ssn');
      expect(full.region).toBe('eu');
    }
    // Still routed by the document and resumable: one queue per document, the token stored.
    expect(new Set(jobs.map((j) => j.data.doc)).size).toBe(3);
    await waitFor(
      async () => (await storedToken(env.REDIS_URL!, env.QUEUE_PREFIX!, env.INGEST_ID!)) !== null,
      'a stored token',
    );
    const redis = new Redis(env.REDIS_URL!);
    try {
      const keys = await redis.keys(`${env.QUEUE_PREFIX!}:*`);
      const values = await Promise.all(
        keys.map(async (key) =>
          (await redis.type(key)) === 'hash' ? JSON.stringify(await redis.hgetall(key)) : '',
        ),
      );
      expect(values.join('')).not.toMatch(/078-05-1120|219-09-9999|457-55-5462/);
    } finally {
      redis.disconnect();
    }
  });

  test('WATCH patterns and EXCLUDE select namespaces on the server, and a snapshot copies the same ones', async () => {
    const scope = {
      // Names no other test of this file uses: a snapshot copies every matching collection.
      WATCH: 'pat_a.*,*.pat_orders,/^pat_c\\.log_\\d+$/i',
      EXCLUDE: 'pat_a.audit',
    };
    const written = [
      ['pat_a', 'items', true],
      ['pat_a', 'audit', false],
      ['pat_b', 'pat_orders', true],
      ['pat_b', 'users', false],
      ['pat_c', 'LOG_7', true],
      ['pat_c', 'log_x', false],
    ] as const;
    const write = (n: number) =>
      Promise.all(
        written.map(([db, coll]) =>
          mongo
            .db(db)
            .collection(coll)
            .insertOne({ _id: n } as never),
        ),
      );
    const expected = written.filter(([, , wanted]) => wanted).map(([db, coll]) => `${db}.${coll}`);
    const namespaces = (jobs: Awaited<ReturnType<typeof jobsOf>>) =>
      [...new Set(jobs.map((j) => j.data.ns))].sort();

    const streaming = isolated(scope);
    const ingest = run(streaming);
    await waitForLog(ingest, 'change stream open', 'the ingest to open its stream');
    await write(1);
    await waitFor(
      async () => (await jobsOf(streaming)).length === expected.length,
      'the matching inserts',
    );
    // A later write shows that nothing else was on its way.
    await write(2);
    await waitFor(
      async () => (await jobsOf(streaming)).length === 2 * expected.length,
      'the second round',
    );
    expect(namespaces(await jobsOf(streaming))).toEqual(expected.sort());

    const copy = isolated({ ...scope, START_AT: 'snapshot' });
    const copying = run(copy);
    const snapshots = async () => (await jobsOf(copy)).filter((j) => j.data.op === 'snapshot');
    await waitFor(
      async () => (await snapshots()).length >= 2 * expected.length,
      async () =>
        `the snapshot copy; jobs so far: ${JSON.stringify((await jobsOf(copy)).map((j) => `${j.data.op} ${j.data.ns}`))}\n${copying.output().slice(-3000)}`,
      60_000,
    );
    await waitForLog(copying, 'change stream open', 'the stream after the copy');
    const copied = await snapshots();
    expect(copied).toHaveLength(2 * expected.length);
    expect(namespaces(copied)).toEqual(expected.sort());
    // The stream after the copy may repeat a change the copy already saw (the copy and the
    // stream overlap at its start time, by design): only ever of a watched namespace.
    expect(namespaces(await jobsOf(copy))).toEqual(expected.sort());
  });

  test('continues after a drop and a rename of the watched collection (invalidate), without a restart loop', async () => {
    const env = isolated({ WATCH: 'inval.c' });
    const ingest = run(env);
    await waitForLog(ingest, 'change stream open', 'the ingest to open its stream');
    const coll = mongo.db('inval').collection('c');
    await coll.insertOne({ _id: 1 } as never);
    await coll.drop();
    await waitForLog(ingest, 'change stream invalidated', 'the invalidate');
    await coll.insertOne({ _id: 2 } as never);
    await coll.rename('c2');
    await mongo
      .db('inval')
      .collection('c')
      .insertOne({ _id: 3 } as never);
    await waitFor(
      async () => (await jobsOf(env)).filter((j) => j.data.doc !== null).length === 3,
      'the inserts after both invalidations',
    ).catch(async (error: Error) => {
      const jobs = (await jobsOf(env)).map(
        (j) =>
          `${j.data.op} ${JSON.stringify((j.event as { documentKey?: unknown }).documentKey ?? null)}`,
      );
      throw new Error(
        `${error.message}; jobs: ${jobs.join(', ')}\n${ingest.output().slice(-3000)}`,
      );
    });
    const jobs = await jobsOf(env);
    expect(jobs.filter((j) => j.data.op === 'drop')).toHaveLength(3);
    expect(jobs.filter((j) => j.data.op === 'rename')).toHaveLength(3);
    expect(jobs.find((j) => j.data.op === 'rename')!.event).toMatchObject({
      to: { db: 'inval', coll: 'c2' },
    });
    expect(ingest.output().match(/change stream invalidated/g)).toHaveLength(2);
    expect(ingest.child.exitCode).toBeNull();
  });

  test('advances the stored token on empty batches (a quiet namespace never falls off the oplog)', async () => {
    const env = isolated({ WATCH: 'quiet.watched' });
    const ingest = run(env);
    await waitFor(
      async () => (await storedToken(env.REDIS_URL, env.QUEUE_PREFIX, env.INGEST_ID)) !== null,
      'a first token',
    );
    const first = await storedToken(env.REDIS_URL, env.QUEUE_PREFIX, env.INGEST_ID);
    await mongo
      .db('quiet')
      .collection('other')
      .insertMany([{ a: 1 }, { a: 2 }]);
    await waitFor(
      async () => (await storedToken(env.REDIS_URL, env.QUEUE_PREFIX, env.INGEST_ID)) !== first,
      'the token to move',
    );
    expect(await jobsOf(env)).toHaveLength(0);
    expect(ingest.child.exitCode).toBeNull();
  });

  test('SIGTERM stops reading, stores the token of the last event and exits 0 within 5 seconds', async () => {
    const env = isolated({ WATCH: 'term.c' });
    const ingest = run(env);
    await waitForLog(ingest, 'change stream open', 'the ingest to open its stream');
    await mongo
      .db('term')
      .collection('c')
      .insertMany(Array.from({ length: 100 }, (_, i) => ({ i })));
    await waitFor(async () => (await jobsOf(env)).length === 100, '100 jobs');
    const started = Date.now();
    process.kill(ingest.pid, 'SIGTERM');
    const { code } = await ingest.exited;
    expect(code).toBe(0);
    expect(Date.now() - started).toBeLessThan(5000);
    const jobs = await jobsOf(env);
    const lastToken = (jobs[jobs.length - 1]!.event._id as { _data: string })._data;
    const stored = (await storedToken(env.REDIS_URL, env.QUEUE_PREFIX, env.INGEST_ID))!;
    expect(stored >= lastToken || stored.includes(lastToken)).toBe(true);
  });

  test('its main thread never loads the MongoDB driver: the reader thread holds the connection', async () => {
    // Preloaded into the ingest: at exit, how many of the main thread's CommonJS modules are the
    // driver's and bson's (bson must be there: it shows that the probe sees what was loaded).
    const probe = `import Module from 'node:module';
      import { isMainThread } from 'node:worker_threads';
      if (isMainThread) process.on('exit', () => {
        const loaded = Object.keys(Module._cache);
        const count = (name) => loaded.filter((path) => path.includes('/node_modules/' + name + '/')).length;
        process.stderr.write('main thread modules: mongodb ' + count('mongodb') + ', bson ' + count('bson') + '\\n');
      });`;
    const env = isolated({
      WATCH: 'lean.c',
      NODE_OPTIONS: `--import=data:text/javascript,${encodeURIComponent(probe)}`,
    });
    const ingest = run(env);
    await waitForLog(ingest, 'change stream open', 'the ingest to open its stream');
    await mongo
      .db('lean')
      .collection('c')
      .insertMany(Array.from({ length: 20 }, (_, i) => ({ i })));
    await waitFor(async () => (await jobsOf(env)).length === 20, '20 jobs');
    process.kill(ingest.pid, 'SIGTERM');
    expect((await ingest.exited).code).toBe(0);
    expect(ingest.output()).toMatch(/main thread modules: mongodb 0, bson [1-9]/);
  });

  test('backpressure: stops reading above the backlog limit and catches up when the queues drain', async () => {
    const env = isolated({ WATCH: 'bp.c', BACKLOG_LIMIT: '40', BATCH_SIZE: '10' });
    const ingest = run(env);
    await waitForLog(ingest, 'change stream open', 'the ingest to open its stream');
    await mongo
      .db('bp')
      .collection('c')
      .insertMany(Array.from({ length: 600 }, (_, i) => ({ _id: i }) as never));
    await waitForLog(ingest, 'backlog limit reached', 'backpressure');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const held = await jobsOf(env);
    const perQueue = WORKERS.map((w) => held.filter((j) => j.queue === w).length);
    // It stops after the batch that crossed the limit: at most limit + one batch per queue.
    expect(Math.max(...perQueue)).toBeLessThanOrEqual(40 + 10);
    expect(held.length).toBeLessThan(600);
    const consumer = new RecordingConsumer(env.REDIS_URL, env.QUEUE_PREFIX, WORKERS);
    try {
      await waitFor(() => consumer.total === 600, 'all 600 events after the queues drain', 60_000);
    } finally {
      await consumer.close();
    }
    expect(ingest.output()).toContain('backlog below the limit');
  });

  test('a stored start time (changeq token set --at, resync) starts the stream at it; the first batch replaces it with a token', async () => {
    const env = isolated({ WATCH: 'marker.c' });
    const collection = mongo.db('marker').collection('c');
    await collection.insertMany([{ phase: 'before' }, { phase: 'before' }]);
    const reply = await mongo.db('admin').command({ hello: 1 });
    const after = reply.operationTime as Timestamp;
    const startAt = new Timestamp({
      t: after.getHighBitsUnsigned(),
      i: after.getLowBitsUnsigned() + 1,
    });
    await collection.insertMany([{ phase: 'after' }, { phase: 'after' }, { phase: 'after' }]);
    const redis = new Redis(env.REDIS_URL);
    const store = new PositionStore(redis, env.QUEUE_PREFIX, env.INGEST_ID);
    await store.saveStartMarker({ startAt, savedAt: new Date(), reason: 'test' });
    expect(await store.load()).toBeNull(); // a marker is not a resume position
    const ingest = run(env);
    await waitFor(async () => (await jobsOf(env)).length >= 3, 'the events after the start time');
    const jobs = await jobsOf(env);
    expect(
      jobs.map((job) => (job.event as { fullDocument?: { phase?: string } }).fullDocument?.phase),
    ).toEqual(['after', 'after', 'after']);
    await waitFor(
      async () => (await store.loadStart())?.kind === 'position',
      'a token in place of the marker',
    );
    expect(ingest.output()).toContain('a start time is stored');
    redis.disconnect();
  });

  test('a corrupt stored token stops it with a clear message, without touching the token', async () => {
    const env = isolated({ WATCH: 'corrupt.c' });
    const redis = new Redis(env.REDIS_URL);
    const key = ingestKeys(env.QUEUE_PREFIX, env.INGEST_ID).token;
    await redis.set(key, '{"v":1,"token":{"_data":"zz-not-hex"}}');
    const ingest = run(env);
    const { code } = await ingest.exited;
    expect(code).toBe(2);
    expect(ingest.output()).toMatch(
      /resume token stored in Redis at ".*" is corrupt.*Fix: .*changeq token/s,
    );
    expect(ingest.output()).not.toMatch(/\n\s+at /); // no stack trace
    expect(await redis.get(key)).toBe('{"v":1,"token":{"_data":"zz-not-hex"}}');
    redis.disconnect();
  });

  test('a token key of the wrong Redis type stops it with one clear line, without touching it', async () => {
    const env = isolated({ WATCH: 'wrongtype.c' });
    const redis = new Redis(env.REDIS_URL);
    const key = ingestKeys(env.QUEUE_PREFIX, env.INGEST_ID).token;
    await redis.hset(key, 'token', 'x');
    const ingest = run(env);
    expect((await ingest.exited).code).toBe(2);
    expect(ingest.stderr().trim().split('\n').pop()).toMatch(
      /resume token stored in Redis at ".*" is corrupt \(it is a Redis hash, not a string\).*Fix: look at it with `changeq token show`/,
    );
    expect(ingest.output()).not.toMatch(/\n\s+at /); // no stack trace
    expect(await redis.hgetall(key)).toEqual({ token: 'x' });
    redis.disconnect();
  });

  test('a token MongoDB cannot use (260) and a token of another deployment (280) each say what they are', async () => {
    const stopLine = async (token: { _data: string }, watch: string) => {
      const env = isolated({ WATCH: watch });
      const redis = new Redis(env.REDIS_URL);
      const store = new PositionStore(redis, env.QUEUE_PREFIX, env.INGEST_ID);
      await store.save({ token, clusterTime: null, wallTime: null, savedAt: new Date() });
      redis.disconnect();
      const ingest = run(env);
      expect((await ingest.exited).code, ingest.output()).toBe(2);
      expect(ingest.output()).not.toMatch(/\n\s+at /); // no stack trace
      const line = ingest.stderr().trim().split('\n').pop()!;
      expect(line).toMatch(/^changeq-ingest: /);
      return line;
    };

    const malformed = await stopLine({ _data: '82ABCDEF' }, 'tok260.c');
    expect(malformed).toMatch(
      /MongoDB cannot use the stored resume token .*\(InvalidResumeToken 260: /,
    );
    expect(malformed).toMatch(/damaged, or was not made by this deployment's change stream/);
    expect(malformed).toMatch(/Fix: check that REDIS_URL, QUEUE_PREFIX and INGEST_ID/);
    expect(malformed).not.toMatch(/oplog/);

    // A real token of another deployment's change stream. The test server's tokens name a
    // position only (MongoDB's also name the collection and the document): the other server's
    // event is taken in a second in which this one wrote nothing, so no event here shares it.
    const second = () => new Promise((resolve) => setTimeout(resolve, 1100));
    const other = await startMongo();
    await second();
    const client = new MongoClient(other.uri);
    let foreign: { _data: string };
    try {
      const stream = client.db('tok280').collection('c').watch();
      await stream.tryNext();
      await client.db('tok280').collection('c').insertOne({ elsewhere: true });
      foreign = (await stream.next())._id as { _data: string };
      await stream.close();
    } finally {
      await client.close();
      await other.stop();
    }
    await second();
    await mongo.db('tok280').collection('c').insertOne({ here: true });
    const fatal = await stopLine(foreign, 'tok280.c');
    expect(fatal).toMatch(
      /the change stream cannot continue from .*\(ChangeStreamFatalError 280: /,
    );
    expect(fatal).toMatch(/not in its history \(a token of another deployment\)/);
    expect(fatal).not.toMatch(/oplog/);
  });

  test('an unreachable Redis or MongoDB gives one clear line and a non-zero exit', async () => {
    const closed = await freePort();
    // Both at once: each waits out its own connect timeout.
    const noRedis = run(
      isolated({ REDIS_URL: `redis://127.0.0.1:${closed}`, CONNECT_TIMEOUT_MS: '800' }),
    );
    const noMongo = run(
      isolated({
        MONGODB_URI: `mongodb://127.0.0.1:${closed}/?directConnection=true`,
        CONNECT_TIMEOUT_MS: '800',
      }),
    );
    expect((await noRedis.exited).code).toBe(2);
    expect(noRedis.output()).toMatch(
      /cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+ .*Fix: check REDIS_URL/,
    );
    expect((await noMongo.exited).code).toBe(2);
    expect(noMongo.output()).toMatch(
      /cannot reach MongoDB at mongodb:\/\/127\.0\.0\.1:\d+.*Fix: check MONGODB_URI/,
    );
  });

  test('bad settings and flags are one clear line each', async () => {
    const cases: [Record<string, string>, string[], RegExp][] = [
      [{ MONGODB_URI: '' }, [], /MONGODB_URI/],
      [{ WATCH: 'a.b,c' }, [], /WATCH="a\.b,c" mixes the database name "c" with namespaces/],
      [{ START_AT: 'yesterday' }, [], /START_AT="yesterday"/],
      // Issue 12: a MongoParseError stack, a BSONError, a silent roll-over to 2026-03-02.
      [{ START_AT: '2106-02-07T06:28:16Z' }, [], /last second a MongoDB cluster time can hold/],
      [{ START_AT: '2026-02-30' }, [], /START_AT="2026-02-30" has the day 30/],
      [{ MONGODB_URI: 'mongodb://127.0.0.1:1/?bogus=1' }, [], /option bogus is not supported/],
      [{ MONGODB_URI: 'mongodb://127.0.0.1:1/?tls=maybe' }, [], /tls\/ssl must be either/],
      [
        { MONGODB_URI: 'mongodb://admin:p@ss/w0rd@127.0.0.1:1/' },
        [],
        /MONGODB_URI="mongodb:\/\/admin:\*\*\*@127\.0\.0\.1:1\/" has a user name or password holding "@" and "\/" as is/,
      ],
      [{ QUEUE_PREFIX: 'a:b' }, [], /QUEUE_PREFIX="a:b" holds ":"/],
      [{ BATCH_SIZE: 'lots' }, [], /BATCH_SIZE/],
      [{ MATCH: '{oops' }, [], /MATCH is not valid Extended JSON/],
      [{ PIPELINE: '[{"$unset": "documentKey"}]' }, [], /PIPELINE stage 1 removes documentKey/],
      [
        { PIPELINE: '[{"$unset": "fullDocument.ssn"}]', START_AT: 'snapshot' },
        [],
        /START_AT=snapshot with a PIPELINE that reshapes events/,
      ],
      [{ WORKERS_FILE: '/nonexistent/workers.toml' }, [], /\/nonexistent\/workers\.toml/],
      [{}, ['--bogus'], /bogus.*Fix: run with --help/],
    ];
    // Side by side: each is a process of its own that ends by itself.
    const runs = cases.map(([env, args]) => run({ ...isolated(), ...env }, args));
    const codes = await Promise.all(runs.map(async (ingest) => (await ingest.exited).code));
    cases.forEach(([, , pattern], index) => {
      const output = runs[index]!.output();
      expect(codes[index], output).toBe(2);
      expect(output).toMatch(pattern);
      expect(output.trim().split('\n'), output).toHaveLength(1);
      expect(output).not.toMatch(/w0rd|ss\/w/); // the password of the case above
    });
  });
});

describe('a resume point older than the history window', () => {
  let small: RunningMongo;
  beforeAll(async () => {
    small = await startMongo({ historyMaxEvents: 50 });
  });
  afterAll(async () => {
    await small?.stop();
  });

  test('stops with the token time and both ways on; --accept-gap continues and logs the window', async () => {
    const env = isolated({ MONGODB_URI: small.uri, WATCH: 'window.c' });
    const client = new MongoClient(small.uri);
    const coll = client.db('window').collection('c');
    try {
      let ingest = run(env);
      await waitForLog(ingest, 'change stream open', 'the ingest to open its stream');
      await coll.insertMany(Array.from({ length: 5 }, (_, i) => ({ i })));
      await waitFor(async () => (await jobsOf(env)).length === 5, 'five jobs');
      process.kill(ingest.pid, 'SIGTERM');
      expect((await ingest.exited).code).toBe(0);
      await coll.insertMany(Array.from({ length: 200 }, (_, i) => ({ j: i })));

      ingest = run(env);
      const { code } = await ingest.exited;
      expect(code, ingest.output()).toBe(2);
      expect(ingest.output()).toMatch(/no longer in MongoDB's oplog \(ChangeStreamHistoryLost 286/);
      expect(ingest.output()).toMatch(/\d{4}-\d{2}-\d{2}T/); // the token's time
      expect(ingest.output()).toMatch(/changeq resync.*START_AT=snapshot.*--accept-gap/);
      expect(await jobsOf(env)).toHaveLength(5);

      ingest = run(env, ['--accept-gap']);
      await waitForLog(ingest, 'accepting a gap', 'the gap to be accepted');
      await waitForLog(ingest, 'change stream open', 'the stream to reopen from now');
      await coll.insertOne({ after: true });
      await waitFor(async () => (await jobsOf(env)).length === 6, 'the event after the gap');
      expect(ingest.output()).toMatch(/"gapFrom":"\d{4}-/);
    } finally {
      await client.close();
    }
  });
});
