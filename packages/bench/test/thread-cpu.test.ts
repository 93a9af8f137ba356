// The /proc accounting the worker goals' reasons split by: a real process whose main thread
// computes, then waits while a worker thread computes.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { mainThreadCpuMicros, processCpuMicros } from '@changeq/processes';

// A fixed amount of work, not a stretch of wall time: on a loaded machine a thread may get only
// part of the time it spins, but always the CPU this work needs (about 0.3 s here).
const CHILD = `
const { Worker } = require('node:worker_threads');
const burn = 'let x = 0; for (let i = 0; i < 6e7; i++) x = (x * 31 + i) | 0; globalThis.x = x;';
eval(burn);
new Worker(burn, { eval: true }).once('exit', () => console.log('done'));
process.stdin.resume();
`;

describe('CPU by thread', () => {
  it("counts a process's main thread apart from its other threads", async () => {
    const child = spawn(process.execPath, ['-e', CHILD], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      await once(child.stdout, 'data');
      const main = mainThreadCpuMicros(child.pid!);
      const all = processCpuMicros(child.pid!);
      // The work on each thread (the worker thread has ended: a process's total keeps the CPU of
      // its threads that are gone). Read from the whole process, the two would be equal.
      expect(main).toBeGreaterThan(150_000);
      expect(all - main).toBeGreaterThan(150_000);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('reads 0 for a process that is gone', () => {
    expect(mainThreadCpuMicros(2 ** 22 + 1)).toBe(0);
  });
});
