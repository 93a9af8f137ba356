/**
 * `changeq --help | head`: a reader that closes the pipe early used to kill the process with an
 * unhandled EPIPE and a stack trace. Every command, and every program, now ends quietly.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startRedis, type RunningRedis } from '@changeq/stack';
import { startApp, type App } from '@changeq/testkit';

let redis: RunningRedis;
beforeAll(async () => {
  redis = await startRedis();
}, 60_000);
afterAll(async () => {
  await redis?.stop();
});

/** Runs the app with its stdout closed before it writes anything: what `| head -0` does. */
async function withStdoutClosed(app: App, args: string[], env: Record<string, string> = {}) {
  const run = startApp(app, args, env);
  // The read end closes now; the child's first write to stdout meets EPIPE.
  run.child.stdout?.destroy();
  const { code, signal } = await run.closed;
  return { code, signal, stderr: run.stderr() };
}

test.each([
  ['cli', ['--help']],
  ['cli', ['status', '--help']],
  ['cli', ['token', 'set', '--help']],
  ['ingest', ['--help']],
  ['worker', ['--help']],
  ['board', ['--help']],
] as const)(
  '%s %j ends quietly (exit 0, nothing on stderr) when stdout is closed',
  async (app, args) => {
    const result = await withStdoutClosed(app, [...args]);
    expect(result).toEqual({ code: 0, signal: null, stderr: '' });
  },
);

test('a command that talks to Redis finishes its work and exits as it would have', async () => {
  const result = await withStdoutClosed('cli', ['token', 'show'], {
    REDIS_URL: redis.url,
    QUEUE_PREFIX: 'closedout',
  });
  expect(result).toEqual({ code: 0, signal: null, stderr: '' });
  // A failing command keeps its exit code and its line on stderr.
  const failing = await withStdoutClosed('cli', ['token', 'set', '--at', 'yesterday']);
  expect(failing.code).toBe(2);
  expect(failing.stderr).toMatch(/^changeq: --at="yesterday" is not an ISO 8601 date-time/);
});
