/**
 * token, preimages, help and errors of the CLI against real servers; `token set --at` proven by
 * a real ingest start.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { MongoClient } from 'mongodb';
import { ingestKeys } from '@changeq/store';
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
