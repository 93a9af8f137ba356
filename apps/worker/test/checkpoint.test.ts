/**
 * The ring change's two halves inside workers, in-process with fakes: the old owner's
 * checkpoint task (the scheduler's) and the new owner's hold (session/holds.ts), and their
 * composition across several workers and epochs (A→B→C, A→B→A).
 */
import { describe, expect, it } from 'vitest';
import type { Hold } from '@changeq/shared';
import type { HandlerFailure } from '../src/scheduler/invoke.js';
import {
  OrderedScheduler,
  type Admission,
  type SchedulerTask,
  type TaskDriver,
} from '../src/scheduler/scheduler.js';
import { Holds, type HandoffFlags } from '../src/session/holds.js';

interface Task extends SchedulerTask {
  hold?: Hold;
  /** A checkpoint's epoch. */
  epoch?: number;
}

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

/** Handoff flags in memory, as the store keeps them in Redis. */
class Flags implements HandoffFlags {
  readonly set = new Set<string>();
  polls = 0;
  async handoffsDone(handoffs: readonly { worker: string; epoch: number }[]) {
    this.polls += 1;
    return handoffs.map(({ worker, epoch }) => this.set.has(`${worker}@${epoch}`));
  }
}

/** One worker: its scheduler and a driver that records what ran, in one shared log. */
class FakeWorker implements TaskDriver<Task> {
  readonly scheduler: OrderedScheduler<Task>;
  readonly holds: Holds;
  readonly gates = new Map<string, () => void>();
  private readonly stop = new AbortController();

  constructor(
    readonly name: string,
    private readonly flags: Flags,
    private readonly log: string[],
  ) {
    this.holds = new Holds(flags, { pollMs: 5 });
    this.scheduler = new OrderedScheduler<Task>(this, {
      concurrency: 4,
      attempts: 1,
      backoffMs: 1,
      maxBackoffMs: 1,
      timeoutMs: 5_000,
    });
  }

  /** The task `id` runs until `release(id)`. */
  gate(id: string): void {
    this.gates.set(id, () => undefined);
  }

  release(id: string): void {
    this.gates.get(id)?.();
    this.gates.delete(id);
  }

  halt(): void {
    this.stop.abort();
  }

  async admit(task: Task): Promise<Admission> {
    if (!task.hold) return 'run';
    return (await this.holds.wait(task.hold, this.stop.signal)) ? 'run' : 'leave';
  }
  async call(task: Task) {
    this.log.push(`${this.name}:${task.id}:start`);
    if (this.gates.has(task.id)) {
      await new Promise<void>((resolve) => this.gates.set(task.id, resolve));
    }
  }
  async checkpoint(task: Task) {
    this.flags.set.add(`${this.name}@${task.epoch}`);
    this.log.push(`${this.name}:checkpoint ${task.epoch}`);
  }
  async attemptFailed() {}
  async complete(task: Task) {
    this.log.push(`${this.name}:${task.id}:done`);
  }
  async deadLetter(task: Task, _failure: HandlerFailure) {
    this.log.push(`${this.name}:${task.id}:dead`);
  }
  async park(task: Task) {
    this.log.push(`${this.name}:${task.id}:parked`);
  }
  async drop(task: Task) {
    this.log.push(`${this.name}:${task.id}:dropped`);
  }
}

const event = (id: string, key: string | null, hold?: Hold): Task => ({
  id,
  key,
  source: 'event',
  priorAttempts: 0,
  ...(hold ? { hold } : {}),
});
const checkpoint = (epoch: number): Task => ({
  id: `handoff-${epoch}`,
  key: null,
  checkpoint: true,
  epoch,
  source: 'event',
  priorAttempts: 0,
});

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (condition()) return;
    await tick(5);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('checkpoint task', () => {
  it('is done once every task submitted before it finished, and holds back nothing after it', async () => {
    const log: string[] = [];
    const a = new FakeWorker('A', new Flags(), log);
    a.gate('d1');
    a.scheduler.submit(event('d1', 'doc1'));
    a.scheduler.submit(event('e1', 'doc2'));
    a.scheduler.submit(checkpoint(2));
    a.scheduler.submit(event('f1', 'doc3')); // after the checkpoint: runs at once
    a.scheduler.submit(event('d2', 'doc1')); // same document as d1: waits for d1, not for the checkpoint
    await until(() => log.includes('A:f1:done'), 'f1');
    await until(() => log.includes('A:e1:done'), 'e1');
    expect(log).not.toContain('A:checkpoint 2');
    a.release('d1');
    await until(() => log.includes('A:checkpoint 2'), 'the checkpoint');
    await a.scheduler.waitIdle(1000);
    expect(log.indexOf('A:checkpoint 2')).toBeGreaterThan(log.indexOf('A:d1:done'));
    expect(log.indexOf('A:f1:done')).toBeLessThan(log.indexOf('A:d1:done'));
    expect(log).toContain('A:d2:done');
    expect(a.scheduler.size).toBe(0);
  });

  it('passes at once with nothing before it, and waits for a barrier before it', async () => {
    const log: string[] = [];
    const a = new FakeWorker('A', new Flags(), log);
    a.scheduler.submit(checkpoint(2));
    await until(() => log.includes('A:checkpoint 2'), 'the checkpoint');
    a.gate('drop');
    a.scheduler.submit(event('drop', null));
    a.scheduler.submit(checkpoint(3));
    await tick(20);
    expect(log).not.toContain('A:checkpoint 3');
    a.release('drop');
    await until(() => log.includes('A:checkpoint 3'), 'the checkpoint after the barrier');
  });

  it('counts a dead-lettered or parked task as finished', async () => {
    const log: string[] = [];
    const a = new FakeWorker('A', new Flags(), log);
    a.call = async (task: Task) => {
      if (task.id === 'bad') throw new Error('handler failed');
    };
    a.scheduler.submit(event('bad', 'doc1'));
    a.scheduler.submit(checkpoint(2));
    await until(() => log.includes('A:checkpoint 2'), 'the checkpoint');
    expect(log).toEqual(['A:bad:dead', 'A:checkpoint 2']);
  });
});

describe('hold', () => {
  it('admits a held task once the old owner passed its checkpoint; other documents go on', async () => {
    const log: string[] = [];
    const flags = new Flags();
    const a = new FakeWorker('A', flags, log);
    const b = new FakeWorker('B', flags, log);
    a.gate('x1');
    a.scheduler.submit(event('x1', 'moved'));
    a.scheduler.submit(checkpoint(2));
    b.scheduler.submit(event('x2', 'moved', { epoch: 2, workers: ['A'] }));
    b.scheduler.submit(event('x3', 'moved')); // same document: behind x2 in its line
    b.scheduler.submit(event('y', 'stayed'));
    await until(() => log.includes('B:y:done'), 'a document that did not move');
    await tick(30);
    expect(log.filter((line) => line.startsWith('B:x'))).toEqual([]);
    expect(b.holds.held).toBe(1);
    a.release('x1');
    await until(() => log.includes('B:x3:done'), 'the held document');
    expect(log.indexOf('B:x2:start')).toBeGreaterThan(log.indexOf('A:checkpoint 2'));
    expect(log.indexOf('B:x3:start')).toBeGreaterThan(log.indexOf('B:x2:done'));
    // The flag is remembered: a later held job of that epoch does not ask Redis again.
    const polls = flags.polls;
    b.scheduler.submit(event('x4', 'moved', { epoch: 2, workers: ['A'] }));
    await until(() => log.includes('B:x4:done'), 'x4');
    expect(flags.polls).toBe(polls);
  });

  it('is left unfinished when the process stops while it waits', async () => {
    const log: string[] = [];
    const b = new FakeWorker('B', new Flags(), log);
    b.scheduler.submit(event('x2', 'moved', { epoch: 2, workers: ['A'] }));
    await tick(20);
    b.halt();
    await b.scheduler.waitIdle(1000);
    expect(log).toEqual([]);
    expect(b.scheduler.has('x2')).toBe(true);
    expect(b.holds.held).toBe(0);
  });

  it('is transitive: A→B at epoch 2 then B→C at epoch 3 runs in order, without a cycle', async () => {
    const log: string[] = [];
    const flags = new Flags();
    const [a, b, c] = ['A', 'B', 'C'].map((name) => new FakeWorker(name, flags, log)) as [
      FakeWorker,
      FakeWorker,
      FakeWorker,
    ];
    a.gate('e1');
    a.scheduler.submit(event('e1', 'doc'));
    a.scheduler.submit(checkpoint(2));
    b.scheduler.submit(event('e2', 'doc', { epoch: 2, workers: ['A'] }));
    b.scheduler.submit(checkpoint(3));
    c.scheduler.submit(event('e3', 'doc', { epoch: 3, workers: ['B'] }));
    await tick(30);
    expect(log).toEqual(['A:e1:start']);
    a.release('e1');
    await until(() => log.includes('C:e3:done'), 'the last owner');
    expect(log.filter((line) => line.endsWith(':done') || line.includes('checkpoint'))).toEqual([
      'A:e1:done',
      'A:checkpoint 2',
      'B:e2:done',
      'B:checkpoint 3',
      'C:e3:done',
    ]);
  });

  it('is transitive back and forth: A→B at epoch 2 then B→A at epoch 3', async () => {
    const log: string[] = [];
    const flags = new Flags();
    const a = new FakeWorker('A', flags, log);
    const b = new FakeWorker('B', flags, log);
    a.gate('e1');
    // A's queue: the document's old event, the checkpoint of epoch 2, then (after the document
    // came back at epoch 3) its newest event, held on B's checkpoint of epoch 3.
    a.scheduler.submit(event('e1', 'doc'));
    a.scheduler.submit(checkpoint(2));
    a.scheduler.submit(event('e3', 'doc', { epoch: 3, workers: ['B'] }));
    b.scheduler.submit(event('e2', 'doc', { epoch: 2, workers: ['A'] }));
    b.scheduler.submit(checkpoint(3));
    await tick(30);
    a.release('e1');
    await until(() => log.includes('A:e3:done'), 'the document back on A');
    expect(log.filter((line) => line.endsWith(':done'))).toEqual([
      'A:e1:done',
      'B:e2:done',
      'A:e3:done',
    ]);
  });
});
