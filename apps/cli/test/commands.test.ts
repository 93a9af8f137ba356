/**
 * token, preimages, help and errors of the CLI against real servers; `token set --at` proven by
 * a real ingest start.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { MongoClient, Timestamp } from 'mongodb';
import { PositionStore, ingestKeys } from '@changeq/store';
import { startStack, type RunningStack } from '@changeq/stack';
import { freePort, isolatedPrefix, startApp, waitFor, workersFile } from '@changeq/testkit';
import { cli, cliOnTerminal, operationTime, userErrorLine, waitingJobs } from './helpers.js';

const WORKERS = workersFile(`workers = ["alpha", "bravo", "charlie"]\n`);
const NAMES = ['alpha', 'bravo', 'charlie'];

let stack: RunningStack;
let mongo: MongoClient;
let redis: Redis;
/** A prefix and ingest id of their own per test. */
function isolated() {
  const prefix = isolatedPrefix('c');
  return {
    REDIS_URL: stack.redisUrl,
    MONGODB_URI: stack.mongodbUri,
    WORKERS_FILE: WORKERS,
    QUEUE_PREFIX: prefix,
    INGEST_ID: prefix,
  };
}

beforeAll(async () => {
  stack = await startStack();
  mongo = new MongoClient(stack.mongodbUri);
  await mongo.connect();
  redis = new Redis(stack.redisUrl);
});
afterAll(async () => {
  redis?.disconnect();
  await mongo?.close();
  await stack?.stop();
});

describe('help and errors', () => {
  test('--help on every command', async () => {
    const paths = [
      [],
      ['status'],
      ['token'],
      ['token', 'show'],
      ['token', 'reset'],
      ['token', 'set'],
      ['dlq'],
      ['dlq', 'list'],
      ['dlq', 'retry'],
      ['dlq', 'discard'],
      ['preimages'],
      ['preimages', 'enable'],
      ['preimages', 'disable'],
      ['resync'],
    ];
    const results = await Promise.all(paths.map((path) => cli([...path, '--help'], {})));
    results.forEach((result, index) => {
      expect(result.code).toBe(0);
      expect(result.stderr).toBe('');
      expect(result.stdout).toContain(`Usage: changeq ${paths[index]!.join(' ')}`.trim());
    });
    expect(results[0]!.stdout).toContain('REDIS_URL, MONGODB_URI, WORKERS_FILE');
    expect(results[13]!.stdout).toContain('--watch <scope>');
  });

  test('wrong input and unreachable servers: one line naming the problem and the fix, exit 2, credentials hidden', async () => {
    const deadPort = await freePort();
    const env = isolated();
    const cases: [string[], Record<string, string>, RegExp][] = [
      [[], {}, /no command given.*Fix: run `changeq --help`/],
      [
        ['stauts'],
        {},
        /unknown command 'stauts'.*Did you mean status\?.*Fix: run `changeq --help`/,
      ],
      [['status', '--bogus'], {}, /unknown option '--bogus'.*Fix: run `changeq status --help`/],
      [['token'], {}, /"changeq token" needs a command \(show, reset, set\)/],
      [['token', 'set'], {}, /required option '--at <time>' not specified/],
      [['token', 'set', '--at', 'yesterday'], {}, /--at="yesterday" is not an ISO 8601 date-time/],
      // Issue 12: no silent roll-over of impossible dates, no BSONError past 2106.
      [
        ['token', 'set', '--at', '2026-02-30'],
        {},
        /--at="2026-02-30" has the day 30, which 2026-02/,
      ],
      [
        ['token', 'set', '--at', '2106-02-07T06:28:16Z'],
        {},
        /is after 2106-02-07T06:28:15Z, the last second a MongoDB cluster time can hold/,
      ],
      [
        ['dlq', 'list', '--worker', 'zed'],
        {},
        /worker "zed" is not in .*its names: alpha, bravo, charlie/,
      ],
      [
        ['preimages', 'enable', 'shop'],
        {},
        /"shop" is not a namespace \(expected <database>\.<collection>\)/,
      ],
      [
        ['preimages', 'enable', 'pre.missing'],
        {},
        /there is no collection pre\.missing\. Fix: name a collection of pre \(pre\.present\)/,
      ],
      [['status'], { REDIS_URL: '' }, /no Redis given\. Fix: set REDIS_URL or pass --redis-url/],
      [
        ['status'],
        { REDIS_URL: 'http://x' },
        /REDIS_URL="http:\/\/x" does not start with redis:\/\//,
      ],
      [
        ['status', '--redis-url', `redis://ops:hunter2@127.0.0.1:${deadPort}`],
        {},
        new RegExp(
          `cannot reach Redis at redis://ops:\\*\\*\\*@127\\.0\\.0\\.1:${deadPort} \\(.*ECONNREFUSED.*\\)\\. Fix: check REDIS_URL`,
        ),
      ],
      [
        ['preimages', 'enable', 'a.b', '--connect-timeout-ms', '300'],
        { MONGODB_URI: `mongodb://ops:hunter2@127.0.0.1:${deadPort}/?directConnection=true` },
        /cannot reach MongoDB at mongodb:\/\/ops:\*\*\*@127\.0\.0\.1:\d+\/\?directConnection=true .*Fix: check MONGODB_URI/,
      ],
      [
        ['status', '--workers-file', '/nowhere/workers.toml'],
        {},
        /the workers file \/nowhere\/workers\.toml does not exist/,
      ],
      [['status', '--prefix', 'a b'], {}, /--prefix="a b" holds " "; a prefix may only hold/],
      [['status'], { QUEUE_PREFIX: 'a:b' }, /QUEUE_PREFIX="a:b" holds ":"/],
      // Issue 12: unescaped characters in passwords, options the driver refuses.
      [
        ['status'],
        { REDIS_URL: 'redis://admin:2024/hunter2@127.0.0.1:1' },
        /REDIS_URL="redis:\/\/admin:\*\*\*@127\.0\.0\.1:1" has a user name or password holding "\/" as is/,
      ],
      [
        ['preimages', 'enable', 'a.b'],
        { MONGODB_URI: 'mongodb://admin:p@ss/hunter2@127.0.0.1:1/' },
        /MONGODB_URI="mongodb:\/\/admin:\*\*\*@127\.0\.0\.1:1\/" has a user name or password holding "@" and "\/" as is/,
      ],
      [
        ['preimages', 'enable', 'a.b'],
        { MONGODB_URI: 'mongodb://ops:hunter2@127.0.0.1:1/?tls=maybe' },
        /is refused by the MongoDB driver: tls\/ssl must be either "true" or "false"/,
      ],
    ];
    await mongo.db('pre').createCollection('present');
    const results = await Promise.all(
      cases.map(([args, extra]) => cli(args, { ...env, ...extra })),
    );
    results.forEach((result, index) => {
      const line = userErrorLine(result);
      expect(line).toMatch(cases[index]![2]);
      expect(line).not.toContain('hunter2');
      expect(result.stdout).toBe('');
    });
  });
});

describe('token', () => {
  test('show, set --at (proven by an ingest start), reset; refusals without --yes and while the ingest runs', async () => {
    const env = isolated();
    const key = ingestKeys(env.QUEUE_PREFIX, env.INGEST_ID).token;
    const none = await cli(['token', 'show'], env);
    expect(none.stdout).toMatch(/^no token stored at .*START_AT/);
    expect(JSON.parse((await cli(['token', 'show', '--json'], env)).stdout)).toEqual({
      version: 1,
      key,
      kind: 'none',
    });

    // Changes before and after a second boundary; --at names the boundary.
    const collection = mongo.db('tok').collection('c');
    await collection.insertMany([{ phase: 'before' }, { phase: 'before' }]);
    const beforeTime = (await operationTime(mongo)).getHighBitsUnsigned();
    await waitFor(async () => {
      await mongo.db('tok').collection('tick').insertOne({});
      return (await operationTime(mongo)).getHighBitsUnsigned() > beforeTime;
    }, 'the cluster time to reach the next second');
    const at = new Date((beforeTime + 1) * 1000).toISOString();
    await collection.insertMany([{ phase: 'after' }, { phase: 'after' }, { phase: 'after' }]);

    const refused = userErrorLine(await cli(['token', 'set', '--at', at], env));
    expect(refused).toMatch(/token set needs a confirmation .*Fix: rerun with --yes/);
    expect(await redis.get(key)).toBeNull();

    const set = await cli(['token', 'set', '--at', at, '--yes'], env);
    expect(set.code).toBe(0);
    expect(set.stdout).toContain(`stored the start time ${at}`);
    const shown = JSON.parse((await cli(['token', 'show', '--json'], env)).stdout);
    expect(shown).toMatchObject({
      kind: 'startAt',
      time: at,
      clusterTime: { t: beforeTime + 1, i: 0 },
    });

    const ingest = startApp('ingest', [], { ...env, WATCH: 'tok.c', MAX_AWAIT_TIME_MS: '100' });
    await waitFor(
      async () => (await waitingJobs(env.REDIS_URL, env.QUEUE_PREFIX, NAMES)).length >= 3,
      'the events after --at',
    );
    await waitFor(
      async () => JSON.parse((await cli(['token', 'show', '--json'], env)).stdout).kind === 'token',
      'a token in place of the start time',
    );
    const jobs = await waitingJobs(env.REDIS_URL, env.QUEUE_PREFIX, NAMES);
    expect(jobs.map((job) => job.event.fullDocument?.phase)).toEqual(['after', 'after', 'after']);

    // While the ingest runs, the position is its own.
    for (const args of [
      ['token', 'reset', '--yes'],
      ['token', 'set', '--at', at, '--yes'],
      ['resync', '--yes', '--watch', 'tok.c'],
    ]) {
      const line = userErrorLine(await cli(args, env));
      expect(line).toMatch(
        new RegExp(`the ingest "${env.INGEST_ID}" is running .*Fix: stop the ingest`),
      );
    }
    await ingest.stop('SIGTERM');

    const human = await cli(['token', 'show'], env);
    expect(human.stdout).toMatch(/^key: +.*\ntoken: +[0-9A-F]+\ncluster time: /i);
    const reset = await cli(['token', 'reset', '--yes'], env);
    expect(reset.stdout).toMatch(
      /^deleted the resume token at .* the next ingest start begins at START_AT/,
    );
    expect(await redis.get(key)).toBeNull();
  });

  test('a token key of the wrong type, or a corrupt one: show displays it, status says so, reset deletes it', async () => {
    const env = isolated();
    const key = ingestKeys(env.QUEUE_PREFIX, env.INGEST_ID).token;
    await redis.hset(key, 'token', 'x');

    const shown = await cli(['token', 'show'], env);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(
      /^key: +\S+\ntype: +hash\nproblem: .*is corrupt \(it is a Redis hash, not a string\)/,
    );
    expect(shown.stdout).toMatch(/changeq token reset --yes` deletes it/);
    expect(JSON.parse((await cli(['token', 'show', '--json'], env)).stdout)).toMatchObject({
      version: 1,
      key,
      kind: 'corrupt',
      type: 'hash',
      raw: null,
    });
    const status = await cli(['status'], env);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(
      /\nposition: CORRUPT: .*it is a Redis hash, not a string.*\(see changeq token show\)\n/,
    );
    const report = JSON.parse((await cli(['status', '--json'], env)).stdout);
    expect(report.position).toMatchObject({ kind: 'corrupt', type: 'hash' });

    const reset = await cli(['token', 'reset', '--yes'], env);
    expect(reset.code, reset.stderr).toBe(0);
    expect(reset.stdout).toMatch(/^deleted a Redis hash \(not a token\) at /);
    expect(await redis.exists(key)).toBe(0);

    // A string that is not a token is shown as it is, and replaced by a start time.
    await redis.set(key, '{oops');
    expect((await cli(['token', 'show'], env)).stdout).toMatch(
      /\nvalue: +\{oops\nproblem: .*not Extended JSON/,
    );
    const set = await cli(['token', 'set', '--at', '2026-01-01T00:00:00Z', '--yes'], env);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toContain('(replacing a corrupt token)');
  });

  test('a lost position: show and status name what was lost, and token set --at replaces it', async () => {
    const env = isolated();
    const store = new PositionStore(redis, env.QUEUE_PREFIX, env.INGEST_ID);
    await store.markLost({
      had: {
        kind: 'position',
        position: {
          token: { _data: '826B0A000000000001' },
          clusterTime: new Timestamp({ t: 1_795_000_000, i: 1 }),
          wallTime: null,
          savedAt: new Date('2026-11-18T08:00:00Z'),
        },
      },
      found: null,
      detectedAt: new Date('2026-11-18T08:00:05Z'),
    });
    const shown = await cli(['token', 'show'], env);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(
      /\nLOST: +Redis lost this ingest's position \(found 2026-11-18T08:00:05\.000Z\)/,
    );
    expect(shown.stdout).toMatch(/\nhad: +the resume token at 2026-11-18T11:06:40\.000Z/);
    expect(shown.stdout).toMatch(/\nfound: +nothing\n/);
    expect(shown.stdout).toMatch(/changeq token set --at 2026-11-18T11:06:40\.000Z`/);
    expect(JSON.parse((await cli(['token', 'show', '--json'], env)).stdout)).toMatchObject({
      kind: 'lost',
      had: { kind: 'token', clusterTime: { t: 1_795_000_000, i: 1 } },
      found: null,
      detectedAt: '2026-11-18T08:00:05.000Z',
      replayFrom: '2026-11-18T11:06:40.000Z',
    });
    expect((await cli(['status'], env)).stdout).toMatch(
      /\nposition: LOST \(found 2026-11-18T08:00:05\.000Z\): it was the resume token at 2026-11-18T11:06:40\.000Z .*, Redis held nothing; the ingest refuses to start/,
    );
    const set = await cli(['token', 'set', '--at', '2026-11-18T11:06:40.000Z', '--yes'], env);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toContain('(replacing the record of a lost position (the resume token at');
    expect((await store.loadStart())?.kind).toBe('marker');
  });

  test('on a terminal, a destructive command asks; "y" goes ahead, anything else changes nothing', async () => {
    const env = isolated();
    const key = ingestKeys(env.QUEUE_PREFIX, env.INGEST_ID).token;
    const at = '2026-01-01T00:00:00.000Z';
    const no = await cliOnTerminal(['token', 'set', '--at', at], env, 'n\n');
    expect(no.stdout).toMatch(/Make the ingest start at 2026-01-01T00:00:00\.000Z.*\[y\/N\]/);
    expect(no.stdout).toMatch(/not confirmed; nothing was changed/);
    expect(no.code).toBe(2);
    expect(await redis.get(key)).toBeNull();
    const yes = await cliOnTerminal(['token', 'set', '--at', at], env, 'y\n');
    expect(yes.code).toBe(0);
    expect(yes.stdout).toContain(`stored the start time ${at}`);
    expect(await redis.get(key)).toContain('startAtOperationTime');
  });
});

describe('preimages', () => {
  test('enable and disable set changeStreamPreAndPostImages on the collection', async () => {
    const env = isolated();
    await mongo.db('pre').createCollection('orders');
    const enabled = async () => {
      const [info] = await mongo.db('pre').listCollections({ name: 'orders' }).toArray();
      return (
        (info as { options?: { changeStreamPreAndPostImages?: { enabled?: boolean } } }).options
          ?.changeStreamPreAndPostImages?.enabled === true
      );
    };
    const on = await cli(['preimages', 'enable', 'pre.orders'], env);
    expect(on.code).toBe(0);
    expect(on.stdout).toMatch(
      /pre- and post-images are enabled on pre\.orders; set FULL_DOCUMENT_BEFORE_CHANGE/,
    );
    expect(await enabled()).toBe(true);
    const again = await cli(['preimages', 'enable', 'pre.orders'], env);
    expect(again.stdout).toContain('(they already were)');
    const off = await cli(['preimages', 'disable', 'pre.orders'], env);
    expect(off.code).toBe(0);
    expect(off.stdout).toMatch(/are disabled on pre\.orders/);
    expect(await enabled()).toBe(false);
  });
});
