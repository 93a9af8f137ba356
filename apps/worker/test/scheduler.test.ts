import { describe, expect, it, vi } from 'vitest';
import type { HandlerFailure } from '../src/scheduler/invoke.js';
import {
  OrderedScheduler,
  StopWork,
  type Admission,
  type SchedulerOptions,
  type SchedulerTask,
  type TaskDriver,
} from '../src/scheduler/scheduler.js';
import { seeded } from './helpers/scenario.js';

interface Task extends SchedulerTask {
  n: number;
}

type Behaviour = (task: Task, attempt: number, signal: AbortSignal) => unknown;

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

/** An in-memory driver that records what the scheduler asks of it. */
class Recorder implements TaskDriver<Task> {
  readonly log: string[] = [];
  readonly completed: string[] = [];
  readonly dead: { id: string; failure: HandlerFailure; attempts: number }[] = [];
  readonly failedAttempts: { id: string; attempt: number; message: string }[] = [];
  running = 0;
  maxRunning = 0;
  behaviour: Behaviour = () => undefined;
  admission: (task: Task) => Admission = () => 'run';

  async admit(task: Task) {
    return this.admission(task);
  }
  async call(task: Task, attempt: number, getSignal: () => AbortSignal) {
    const signal = getSignal();
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    this.log.push(`${task.id}#${attempt}`);
    try {
      return await this.behaviour(task, attempt, signal);
    } finally {
      this.running--;
    }
  }
  async attemptFailed(task: Task, attempt: number, failure: HandlerFailure) {
    this.failedAttempts.push({ id: task.id, attempt, message: failure.message });
  }
  async complete(task: Task) {
    this.completed.push(task.id);
  }
  async deadLetter(task: Task, failure: HandlerFailure, attempts: number) {
    this.dead.push({ id: task.id, failure, attempts });
  }
  async park(task: Task) {
    this.log.push(`park ${task.id}`);
  }
  async drop(task: Task) {
    this.log.push(`drop ${task.id}`);
  }
}

function make(driver: Recorder, opts: Partial<SchedulerOptions> = {}) {
  return new OrderedScheduler<Task>(driver, {
    concurrency: 4,
    attempts: 3,
    backoffMs: 5,
    maxBackoffMs: 20,
    timeoutMs: 1_000,
    random: seeded(1),
    ...opts,
  });
}

function task(id: string, key: string | null, n = 0): Task {
  return { id, key, n, source: 'event', priorAttempts: 0 };
}

async function settle(scheduler: OrderedScheduler<Task>, timeoutMs = 5_000) {
  expect(await scheduler.waitIdle(timeoutMs)).toBe(true);
}

describe('OrderedScheduler', () => {
  it('runs the jobs of one document one after another, in submission order', async () => {
    const driver = new Recorder();
    const random = seeded(3);
    driver.behaviour = () => tick(Math.floor(random() * 4));
    const scheduler = make(driver, { concurrency: 8 });
    const expected = new Map<string, number[]>();
    for (let n = 1; n <= 200; n++) {
      const key = `doc${n % 7}`;
      scheduler.submit(task(`j${n}`, key, n));
      expected.set(key, [...(expected.get(key) ?? []), n]);
    }
    await settle(scheduler);
    for (const [key, numbers] of expected) {
      const order = driver.completed
        .filter((id) => Number(id.slice(1)) % 7 === Number(key.slice(3)))
        .map((id) => Number(id.slice(1)));
      expect(order).toEqual(numbers);
    }
    expect(driver.completed).toHaveLength(200);
  });

  it('never runs two jobs of one document at once, and different documents in parallel up to the limit', async () => {
    const driver = new Recorder();
    const inFlight = new Set<string>();
    let overlap = false;
    driver.behaviour = async (t) => {
      if (inFlight.has(t.key!)) overlap = true;
      inFlight.add(t.key!);
      await tick(3);
      inFlight.delete(t.key!);
    };
    const scheduler = make(driver, { concurrency: 3 });
    for (let n = 0; n < 60; n++) scheduler.submit(task(`j${n}`, `doc${n % 10}`, n));
    await settle(scheduler);
    expect(overlap).toBe(false);
    expect(driver.maxRunning).toBe(3);
  });

  it('treats a null key as a barrier: after everything before it, before everything after it', async () => {
    const driver = new Recorder();
    const events: string[] = [];
    driver.behaviour = async (t) => {
      events.push(`start ${t.id}`);
      await tick(t.key === null ? 5 : 1 + (t.n % 3));
      events.push(`end ${t.id}`);
    };
    const scheduler = make(driver, { concurrency: 4 });
    for (let n = 0; n < 10; n++) scheduler.submit(task(`a${n}`, `doc${n % 5}`, n));
    scheduler.submit(task('drop', null));
    for (let n = 0; n < 10; n++) scheduler.submit(task(`b${n}`, `doc${n % 5}`, n));
    await settle(scheduler);
    const start = events.indexOf('start drop');
    const end = events.indexOf('end drop');
    for (let n = 0; n < 10; n++) {
      expect(events.indexOf(`end a${n}`)).toBeLessThan(start);
      expect(events.indexOf(`start b${n}`)).toBeGreaterThan(end);
    }
  });

  it('retries a failure in place: later jobs of the document wait, other documents go on, no slot is held', async () => {
    const driver = new Recorder();
    const order: string[] = [];
    driver.behaviour = async (t, attempt) => {
      order.push(`${t.id}#${attempt}`);
      if (t.id === 'x1' && attempt < 3) throw new Error(`boom ${attempt}`);
      await tick(1);
    };
    // Concurrency 1: if the backoff held the slot, y1..y5 could not run during it. (150 ms:
    // room for their five 1 ms calls on a machine busy with other test files.)
    const scheduler = make(driver, {
      concurrency: 1,
      backoffMs: 150,
      maxBackoffMs: 150,
      random: () => 1,
    });
    scheduler.submit(task('x1', 'X'));
    scheduler.submit(task('x2', 'X'));
    for (let n = 1; n <= 5; n++) scheduler.submit(task(`y${n}`, 'Y'));
    await settle(scheduler);
    expect(order.filter((e) => e.startsWith('x'))).toEqual(['x1#1', 'x1#2', 'x1#3', 'x2#1']);
    // The y jobs ran while x1 was backing off, before its second attempt.
    expect(order.indexOf('y5#1')).toBeLessThan(order.indexOf('x1#2'));
    expect(driver.failedAttempts.map((f) => `${f.id}#${f.attempt}:${f.message}`)).toEqual([
      'x1#1:boom 1',
      'x1#2:boom 2',
    ]);
    expect(driver.completed).toContain('x2');
  });

  it('a driver refusing a call with StopWork (its lease lapsed) halts it: no attempt counted, nothing more started', async () => {
    const driver = new Recorder();
    let refuse = false;
    const call = driver.call.bind(driver);
    driver.call = (t: Task, attempt: number, getSignal: () => AbortSignal) => {
      if (refuse) throw new StopWork('the worker lease lapsed');
      return call(t, attempt, getSignal);
    };
    driver.behaviour = async (t) => {
      await tick(2);
      if (t.id === 'a') refuse = true;
    };
    const scheduler = make(driver, { concurrency: 1 });
    for (const id of ['a', 'b', 'c']) scheduler.submit(task(id, id));
    await vi.waitFor(() => expect(scheduler.haltSignal.aborted).toBe(true));
    await settle(scheduler);
    expect(driver.log).toEqual(['a#1']);
    expect(driver.failedAttempts).toEqual([]);
    expect(driver.dead).toEqual([]);
    expect(scheduler.haltSignal.reason).toBeInstanceOf(StopWork);
  });

  it('dead-letters after the last attempt and then lets the document go on', async () => {
    const driver = new Recorder();
    driver.behaviour = (t) => {
      if (t.id === 'bad') throw new Error('always');
    };
    const scheduler = make(driver, { attempts: 3 });
    scheduler.submit(task('bad', 'D'));
    scheduler.submit(task('next', 'D'));
    await settle(scheduler);
    expect(driver.dead).toMatchObject([{ id: 'bad', attempts: 3, failure: { message: 'always' } }]);
    expect(driver.log).toEqual(['bad#1', 'bad#2', 'bad#3', 'next#1']);
  });

  it('continues counting attempts persisted before a restart', async () => {
    const driver = new Recorder();
    driver.behaviour = () => {
      throw new Error('still failing');
    };
    const scheduler = make(driver, { attempts: 3 });
    scheduler.submit({ ...task('j', 'D'), priorAttempts: 2 });
    scheduler.submit({
      ...task('k', 'E'),
      priorAttempts: 3,
      lastFailure: { message: 'before the crash', kind: 'error' },
    });
    await settle(scheduler);
    expect(driver.log).toEqual(['j#3']);
    expect(driver.dead.map((d) => `${d.id}:${d.attempts}:${d.failure.message}`).sort()).toEqual([
      'j:3:still failing',
      'k:3:before the crash',
    ]);
  });

  it('fails a handler that never settles with a readable timeout, and aborts its signal', async () => {
    const driver = new Recorder();
    let aborted: unknown;
    driver.behaviour = (_t, _attempt, signal) =>
      new Promise(() => {
        signal.addEventListener('abort', () => (aborted = signal.reason));
      });
    const scheduler = make(driver, { attempts: 1, timeoutMs: 50 });
    scheduler.submit(task('slow', 'D'));
    await settle(scheduler);
    expect(driver.dead[0]?.failure).toEqual({
      message: 'handler timed out after 50 ms',
      kind: 'timeout',
    });
    expect(String(aborted)).toMatch(/timed out after 50 ms/);
  });

  it('describes a thrown non-Error value', async () => {
    const driver = new Recorder();
    const thrown: unknown[] = ['boom', 42, { code: 7 }, undefined];
    driver.behaviour = (t) => {
      throw thrown[t.n];
    };
    const scheduler = make(driver, { attempts: 1 });
    thrown.forEach((_, n) => scheduler.submit(task(`t${n}`, `D${n}`, n)));
    await settle(scheduler);
    const messages = Object.fromEntries(driver.dead.map((d) => [d.id, d.failure.message]));
    expect(messages).toEqual({
      t0: 'handler threw a non-Error value: "boom"',
      t1: 'handler threw a non-Error value: 42',
      t2: 'handler threw a non-Error value: {"code":7}',
      t3: 'handler threw a non-Error value: undefined',
    });
  });

  it('describes values that cannot be printed the usual way, without throwing', async () => {
    const driver = new Recorder();
    const noPrototype = Object.assign(Object.create(null) as object, { n: 1n });
    const badToString = {
      toString: () => {
        throw new Error('no');
      },
      toJSON: () => {
        throw new Error('no');
      },
    };
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    const badError = new Error('x');
    Object.defineProperty(badError, 'message', {
      get: () => {
        throw new Error('getter');
      },
    });
    const thrown: unknown[] = [noPrototype, badToString, revoked.proxy, badError];
    driver.behaviour = (t) => {
      throw thrown[t.n];
    };
    const scheduler = make(driver, { attempts: 1 });
    thrown.forEach((_, n) => scheduler.submit(task(`t${n}`, `D${n}`, n)));
    await settle(scheduler);
    const messages = Object.fromEntries(driver.dead.map((d) => [d.id, d.failure.message]));
    expect(messages.t0).toBe('handler threw a non-Error value: [Object: null prototype] { n: 1n }');
    expect(messages.t1).toMatch(/^handler threw a non-Error value: \{ toString: \[Function/);
    expect(messages.t2).toMatch(/^handler threw a non-Error value: ./);
    expect(messages.t3).toMatch(/^handler threw a non-Error value: ./);
  });

  it('refuses a second task with an id it holds (a redelivered job never runs twice at once)', async () => {
    const driver = new Recorder();
    driver.behaviour = () => tick(5);
    const scheduler = make(driver);
    expect(scheduler.submit(task('j', 'D'))).toBe(true);
    expect(scheduler.submit(task('j', 'D'))).toBe(false);
    await settle(scheduler);
    expect(driver.log).toEqual(['j#1']);
    expect(scheduler.submit(task('j', 'D'))).toBe(true);
    await settle(scheduler);
  });

  it('stop: lets calls in flight finish, starts nothing new, leaves the rest unfinished', async () => {
    const driver = new Recorder();
    driver.behaviour = () => tick(30);
    const scheduler = make(driver, { concurrency: 2 });
    for (let n = 0; n < 6; n++) scheduler.submit(task(`j${n}`, `D${n % 3}`, n));
    await tick(5);
    const result = await scheduler.stop(1_000);
    expect(result.drained).toBe(true);
    expect(driver.completed.sort()).toEqual(['j0', 'j1']);
    expect(driver.log).toEqual(['j0#1', 'j1#1']);
    expect(scheduler.size).toBe(4);
  });

  it('stop: aborts calls still running at the timeout through the signal, without counting an attempt', async () => {
    const driver = new Recorder();
    let reason: unknown;
    driver.behaviour = (_t, _a, signal) =>
      new Promise((_resolve, reject) => {
        signal.addEventListener('abort', () => {
          reason = signal.reason;
          reject(new Error('aborted'));
        });
      });
    const scheduler = make(driver);
    scheduler.submit(task('stuck', 'D'));
    await tick(5);
    const result = await scheduler.stop(50);
    expect(result.drained).toBe(false);
    expect(String(reason)).toMatch(/did not finish within 50 ms/);
    expect(driver.failedAttempts).toEqual([]);
    expect(driver.dead).toEqual([]);
    expect(driver.completed).toEqual([]);
    expect(scheduler.size).toBe(1);
  });

  it('parks or drops what the driver says, without calling the handler', async () => {
    const driver = new Recorder();
    driver.admission = (t) => (t.id === 'p' ? 'park' : t.id === 'd' ? 'drop' : 'run');
    const scheduler = make(driver);
    scheduler.submit(task('p', 'D'));
    scheduler.submit(task('d', 'D'));
    scheduler.submit(task('r', 'D'));
    await settle(scheduler);
    expect(driver.log).toEqual(['park p', 'drop d', 'r#1']);
  });

  it('submitFront puts a task before the waiting jobs of its document, after the running one', async () => {
    const driver = new Recorder();
    let release!: () => void;
    driver.behaviour = (t) => (t.id === 'a' ? new Promise<void>((r) => (release = r)) : tick(1));
    const scheduler = make(driver);
    scheduler.submit(task('a', 'D'));
    scheduler.submit(task('b', 'D'));
    await tick(5);
    scheduler.submitFront(task('replay', 'D'));
    release();
    await settle(scheduler);
    expect(driver.log).toEqual(['a#1', 'replay#1', 'b#1']);
  });

  it('expand replaces a task by a list that runs in its place', async () => {
    const driver = new Recorder();
    Object.assign(driver, {
      expand: async (t: Task) => (t.id === 'line' ? [task('r1', 'D'), task('r2', 'D')] : null),
    });
    const scheduler = make(driver);
    scheduler.submit({ ...task('line', 'D'), expandable: true });
    scheduler.submit(task('later', 'D'));
    await settle(scheduler);
    expect(driver.log).toEqual(['r1#1', 'r2#1', 'later#1']);
  });
});
