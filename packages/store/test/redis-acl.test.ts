/**
 * The ACL of docs/operations.md: the commands the Lua scripts call (BullMQ's and ours; Redis
 * checks a script's calls against the user) are exactly SCRIPT_COMMANDS, so a BullMQ upgrade
 * that calls something new fails here before a least-privilege deployment fails in production;
 * and the rules load into a real Redis, where the user can do what changeq does and no more.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startRedis, type RunningRedis } from '@changeq/stack';
import { REDIS_COMMANDS, SCRIPT_COMMANDS, redisAclRules } from '../src/redis-acl.js';

const OURS = fileURLToPath(new URL('../lua/', import.meta.url));
/** BullMQ's scripts, next to its ESM build (the code this package runs). */
const BULLMQ = join(
  dirname(createRequire(import.meta.url).resolve('bullmq')),
  '..',
  'esm',
  'commands',
);

function luaFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? luaFiles(join(dir, entry.name))
      : entry.name.endsWith('.lua')
        ? [join(dir, entry.name)]
        : [],
  );
}

/** `rcall("ZADD", ...)`, `redis.call('get', ...)`, and names picked at run time: `x = "SSCAN"`. */
function commandsCalled(lua: string): string[] {
  const literal = [...lua.matchAll(/\b(?:rcall|redis\.p?call)\(\s*["']([A-Za-z]+)["']/g)];
  const chosen = [
    ...lua.matchAll(
      /\b\w+\s*=\s*(?:[^'"\n]*\band\s+)?["']([A-Z]+)["'](?:\s+or\s+["']([A-Z]+)["'])?/g,
    ),
  ];
  return [...literal.map((m) => m[1]!), ...chosen.flatMap((m) => [m[1]!, m[2] ?? m[1]!])].map(
    (name) => name.toLowerCase(),
  );
}

test('SCRIPT_COMMANDS is exactly what the shipped Lua scripts call', () => {
  const files = [...luaFiles(BULLMQ), ...luaFiles(OURS)];
  expect(files.length).toBeGreaterThan(60);
  const called = new Set(files.flatMap((file) => commandsCalled(readFileSync(file, 'utf8'))));
  // Scripts that call a command at run time without naming it would escape this scan.
  for (const file of files) {
    const dynamic = [
      ...readFileSync(file, 'utf8').matchAll(/\b(?:rcall|redis\.p?call)\(\s*(\w+)\s*,/g),
    ]
      .map((m) => m[1]!)
      .filter((name) => !['countCommand', 'pushCmd', 'command'].includes(name));
    expect(dynamic, file).toEqual([]);
  }
  expect([...called].sort()).toEqual([...SCRIPT_COMMANDS].sort());
});

test('docs/operations.md shows exactly these rules', () => {
  const doc = readFileSync(new URL('../../../docs/operations.md', import.meta.url), 'utf8');
  expect(doc).toContain(`ACL SETUSER changeq on >PASSWORD ${redisAclRules('changeq')}\n`);
});

let redis: RunningRedis;
beforeAll(async () => {
  redis = await startRedis({
    password: 'admin-pw',
    users: [{ name: 'changeq', password: 'changeq-pw', rules: redisAclRules('acl') }],
  });
}, 60_000);
afterAll(async () => {
  await redis?.stop();
});

test('the rules load into Redis and hold the user to its commands and its prefix', async () => {
  const client = new Redis(redis.urlFor({ name: 'changeq', password: 'changeq-pw' }));
  try {
    await client.set('acl:x', '1');
    expect(await client.get('acl:x')).toBe('1');
    await expect(client.get('other:x')).rejects.toThrow(/NOPERM/);
    await expect(client.flushall()).rejects.toThrow(/NOPERM/);
    await expect(client.config('GET', 'databases')).rejects.toThrow(/NOPERM/);
    expect(await client.client('LIST')).toContain('name=');
    await expect(client.acl('WHOAMI')).rejects.toThrow(/NOPERM/);
  } finally {
    client.disconnect();
  }
  expect(REDIS_COMMANDS).toEqual([...new Set(REDIS_COMMANDS)].sort());
});
