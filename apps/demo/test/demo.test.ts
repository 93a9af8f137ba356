import { expect, test } from 'vitest';
import { startMongo } from '@changeq/stack';
import { isAlive, startApp, waitFor } from '@changeq/testkit';

const demo = (args: string[], options: { detached?: boolean } = {}) =>
  startApp('demo', args, { ...process.env, LOG_FORMAT: 'json', BOARD_PORT: '0' }, options);

test('the demo starts everything, moves events through, and stops everything it started', async () => {
  const run = demo(['--rate', '100', '--duration', '12']);
  const { code } = await run.exited;
  const output = run.output();
  expect(code, output).toBe(0);
  expect(output).toContain('demo: running. Where to look:');
  const pids = [...output.matchAll(/demo: started (\S+) \(pid (\d+)\)/g)].map((m) => ({
    name: m[1]!,
    pid: Number(m[2]),
  }));
  // the ingest and one worker per name in workers.toml (alpha, bravo, charlie) at least
  expect(pids.map((p) => p.name)).toEqual(
    expect.arrayContaining(['ingest', 'alpha', 'bravo', 'charlie']),
  );
  for (const { name, pid } of pids)
    expect(isAlive(pid), `${name} (pid ${pid}) still running`).toBe(false);
  const completed = [
    ...output.matchAll(
      /demo: queue (alpha|bravo|charlie)\s+waiting \d+, active \d+, completed (\d+)/g,
    ),
  ].map((m) => Number(m[2]));
  expect(completed).toHaveLength(3);
  expect(
    completed.reduce((a, b) => a + b, 0),
    output.slice(-3000),
  ).toBeGreaterThan(50);
  expect(output).toContain('demo: stopped');
  // Each component stopped on one signal, gracefully (a second one means "exit at once").
  expect(output).not.toContain('second signal');
}, 90_000);

test('Ctrl-C (SIGINT to the whole process group) stops every component gracefully, once', async () => {
  // detached: its own process group, as a terminal gives it
  const run = demo(['--rate', '200'], { detached: true });
  // Mid-flow: the ingest streams, every worker holds its lease, the writer has made 500 changes.
  await waitFor(
    () => {
      const output = run.output();
      return (
        /\[ingest\].*change stream open/.test(output) &&
        (output.match(/active: this process holds the lease/g) ?? []).length >= 3 &&
        /writer: \d+ operations so far/.test(output)
      );
    },
    () =>
      `every component at work and the writer's first report; output:\n${run.output().slice(-3000)}`,
    60_000,
  );
  process.kill(-run.pid, 'SIGINT');
  const { code } = await run.exited;
  const output = run.output();
  expect(code, output.slice(-3000)).toBe(0);
  const pids = [...output.matchAll(/demo: started (\S+) \(pid (\d+)\)/g)].map((m) => ({
    name: m[1]!,
    pid: Number(m[2]),
  }));
  expect(pids.length).toBeGreaterThanOrEqual(4);
  for (const { name, pid } of pids)
    expect(isAlive(pid), `${name} (pid ${pid}) still running`).toBe(false);
  expect(output).toContain('demo: stopped');
  expect(output, output.slice(-3000)).not.toContain('second signal');
}, 90_000);

test('with a MongoDB of your own that wants a password (/ @ : % in it), no output shows it', async () => {
  const password = 'Dm2024/p@ss:w%0rd';
  const mongo = await startMongo({ auth: { user: 'demo', password } });
  try {
    const run = startApp('demo', ['--rate', '50', '--duration', '8'], {
      ...process.env,
      LOG_FORMAT: 'json',
      BOARD_PORT: '0',
      MONGODB_URI: mongo.uri,
    });
    const { code } = await run.exited;
    const output = run.output();
    expect(code, output.slice(-3000)).toBe(0);
    expect(output).toContain('MongoDB             mongodb://demo:***@127.0.0.1:');
    expect(output).toContain('operator CLI        MONGODB_URI="$MONGODB_URI"');
    expect(output).toMatch(/completed [1-9]/);
    for (const form of [password, encodeURIComponent(password), 'Dm2024']) {
      expect(output).not.toContain(form);
    }
  } finally {
    await mongo.stop();
  }
}, 90_000);
