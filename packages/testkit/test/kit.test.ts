import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { isAlive } from '@changeq/processes';
import { afterAll, describe, expect, test } from 'vitest';
import {
  appMain,
  REPO_ROOT,
  endProcesses,
  freePorts,
  isolatedPrefix,
  tempDir,
  startNode,
  waitFor,
  workersFile,
  type TestProcess,
} from '../src/index.js';

const SLEEPER = [
  '-e',
  'console.log("ready"); console.error("on stderr"); setInterval(() => {}, 1000)',
];

describe('processes', () => {
  let fromFailedTest: TestProcess | undefined;
  let fromPassedTest: TestProcess | undefined;
  const fromOutsideATest = startNode(SLEEPER[0]!, SLEEPER.slice(1));
  afterAll(() => endProcesses());

  test.fails('a test that fails (on purpose) ...', async () => {
    fromFailedTest = startNode(SLEEPER[0]!, SLEEPER.slice(1));
    await fromFailedTest.waitForLine(/^ready$/);
    throw new Error('this test fails on purpose');
  });

  test('... still has its processes ended, by PID, as a passing test has', async () => {
    expect(fromFailedTest).toBeDefined();
    await fromFailedTest!.exited;
    expect(isAlive(fromFailedTest!.pid)).toBe(false);
    fromPassedTest = startNode(SLEEPER[0]!, SLEEPER.slice(1));
    await fromPassedTest.waitForLine(/^ready$/);
  });

  test('a passed test ended its processes; one started outside a test runs on', async () => {
    expect(await fromPassedTest!.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(isAlive(fromOutsideATest.pid)).toBe(true);
  });

  test("a file's processes started outside a test end after its last test", async () => {
    const dir = tempDir('changeq-kit-');
    const pidsFile = join(dir, 'pids.json');
    const vitest = startNode(join(REPO_ROOT, 'node_modules', 'vitest', 'vitest.mjs'), ['run'], {
      cwd: join(import.meta.dirname, 'fixtures'),
      env: { PIDS_FILE: pidsFile },
    });
    expect((await vitest.closed).code, vitest.output()).toBe(0);
    const pids = JSON.parse(readFileSync(pidsFile, 'utf8')) as number[];
    expect(pids).toHaveLength(2);
    for (const pid of pids) expect(isAlive(pid), `pid ${pid}`).toBe(false);
  }, 60_000);

  test('output keeps stdout and stderr apart and together; closed waits for all of it', async () => {
    const p = startNode('-e', ['console.log("out"); console.error("err"); process.exit(3)']);
    expect(await p.closed).toEqual({ code: 3, signal: null });
    expect(p.stdout()).toBe('out\n');
    expect(p.stderr()).toBe('err\n');
    expect(p.output()).toContain('out\n');
    expect(p.output()).toContain('err\n');
  });

  test('waitForLine finds a line printed before the call, and fails when the process exits', async () => {
    const p = startNode('-e', ['console.log("first"); setTimeout(() => {}, 300)']);
    await p.exited;
    expect(await p.waitForLine(/^fir/)).toBe('first');
    await expect(p.waitForLine(/never/)).rejects.toThrow(
      /exited before printing a line matching \/never\/; output:\nfirst/,
    );
  });

  test('waitForLine names the pattern and shows the output after its timeout', async () => {
    const p = startNode(SLEEPER[0]!, SLEEPER.slice(1));
    // Started first: on a loaded machine Node may take longer than the timeout to print it.
    await p.waitForLine(/^ready$/);
    await expect(p.waitForLine(/never/, 300)).rejects.toThrow(
      /no line matching \/never\/ within 300 ms; output:\nready/,
    );
  });

  test('stop sends SIGTERM and escalates to SIGKILL after the grace period', async () => {
    const stubborn = startNode('-e', [
      'process.on("SIGTERM", () => console.log("ignored")); console.log("ready"); setInterval(() => {}, 1000)',
    ]);
    await stubborn.waitForLine(/^ready$/);
    await stubborn.stop('SIGTERM', 300);
    expect(await stubborn.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(stubborn.stdout()).toContain('ignored');
  });

  test('only PATH and the given variables reach the process', async () => {
    const p = startNode('-e', ['console.log(JSON.stringify(Object.keys(process.env).sort()))'], {
      env: { ONLY_THIS: '1' },
    });
    await p.closed;
    expect(JSON.parse(p.stdout())).toEqual(['ONLY_THIS', 'PATH']);
  });
});

describe('freePorts', () => {
  // The kernel picks a port at random for each bind to port 0, from a few thousand (here the odd
  // ports from 32768 to about 46900): 300 picks made one after another, each released before the
  // next, nearly always repeat one (the birthday problem). Held together they cannot.
  test('gives as many different ports as asked for, each free to bind', async () => {
    const ports = await freePorts(300);
    expect(new Set(ports).size).toBe(300);
    for (const port of ports.slice(0, 20)) {
      await new Promise<void>((resolve, reject) => {
        const server = createServer();
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
      });
    }
  });
});

describe('waitFor', () => {
  test('returns once the condition holds', async () => {
    let calls = 0;
    await waitFor(() => ++calls >= 3, 'three calls', 5_000, 1);
    expect(calls).toBe(3);
  });

  test('says what it waited for, computed at the timeout', async () => {
    await expect(
      waitFor(
        () => false,
        () => 'the state now',
        100,
      ),
    ).rejects.toThrow('timed out after 100 ms waiting for the state now');
  });
});

test('workersFile writes the text to a fresh workers.toml', () => {
  const a = workersFile('workers = ["a"]\n');
  const b = workersFile('workers = ["b"]\n');
  expect(a).toMatch(/workers\.toml$/);
  expect(a).not.toBe(b);
  expect(readFileSync(a, 'utf8')).toBe('workers = ["a"]\n');
});

test('isolatedPrefix never repeats within a file', () => {
  const prefixes = Array.from({ length: 5 }, () => isolatedPrefix('q'));
  expect(new Set(prefixes).size).toBe(5);
  expect(prefixes.every((p) => p.startsWith('q'))).toBe(true);
});

test('appMain finds an app by its path in the repository, and names the fix when it is not built', () => {
  const root = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
    name: string;
  };
  expect(root.name).toBe('changeq');
  expect(() => appMain('nope' as 'ingest')).toThrow(
    `${join(REPO_ROOT, 'apps', 'nope', 'dist', 'main.js')} is missing: build it first (npx turbo run build --filter=@changeq/nope)`,
  );
});
