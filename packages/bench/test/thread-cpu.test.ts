// The /proc accounting the worker goals' reasons split by: a real process whose main thread
// computes for a while, then waits while a worker thread computes.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { mainThreadCpuMicros, processCpuMicros } from '@changeq/processes';

const CHILD = `
const { Worker } = require('node:worker_threads');
const spin = 'const end = performance.now() + 400; while (performance.now() < end);';
eval(spin);
new Worker(spin, { eval: true }).once('exit', () => console.log('done'));
process.stdin.resume();
`;

describe('CPU by thread', () => {
  it("counts a process's main thread apart from its other threads", async () => {
    const child = spawn(process.execPath, ['-e', CHILD], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      await once(child.stdout, 'data');
      const main = mainThreadCpuMicros(child.pid!);
      const all = processCpuMicros(child.pid!);
      // 400 ms on the main thread (plus Node's start-up), 400 ms on the worker thread, which
      // has ended: a process's total keeps the CPU of its threads that are gone.
      expect(main).toBeGreaterThan(350_000);
      expect(main).toBeLessThan(750_000);
      expect(all - main).toBeGreaterThan(350_000);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('reads 0 for a process that is gone', () => {
    expect(mainThreadCpuMicros(2 ** 22 + 1)).toBe(0);
  });
});
