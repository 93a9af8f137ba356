import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';
import { isAlive, spawnTracked, waitForExit } from '@changeq/stack';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'main.js');

test('the demo starts everything, moves events through, and stops everything it started', async () => {
  const child = spawnTracked(process.execPath, [MAIN, '--rate', '100', '--duration', '12'], {
    env: { ...process.env, LOG_FORMAT: 'json', BOARD_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  await waitForExit(child);
  expect(child.exitCode, output).toBe(0);
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
  const child = spawnTracked(process.execPath, [MAIN, '--rate', '50'], {
    env: { ...process.env, LOG_FORMAT: 'json', BOARD_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, as a terminal gives it
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const deadline = Date.now() + 60_000;
  while (!/writer: \d+ operations so far/.test(output) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  expect(output, output.slice(-3000)).toMatch(/writer: \d+ operations so far/);
  process.kill(-child.pid!, 'SIGINT');
  await waitForExit(child);
  expect(child.exitCode, output.slice(-3000)).toBe(0);
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
