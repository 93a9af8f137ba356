/**
 * The dead-letter policy alone: what it decides for each kind of task from the blocked documents,
 * without Redis (it writes nothing; the outcome writer persists what it returns).
 */
import type { Job } from 'bullmq';
import { describe, expect, it } from 'vitest';
import type { BlockState } from '@changeq/store';
import { DeadLetterPolicy } from '../src/session/dead-letter-policy.js';
import { eventTask, replayLineTask, replayTask } from '../src/session/tasks.js';

const job = (id: string, doc: string | null) =>
  ({
    id,
    name: 'update shop.orders',
    data: { v: 1, ns: 'shop.orders', op: 'update', doc, event: {} },
    progress: 0,
  }) as unknown as Job;

const blocked = (entries: Record<string, BlockState>) => {
  const map = new Map(Object.entries(entries));
  return { get: (doc: string) => map.get(doc), has: (doc: string) => map.has(doc) };
};

const since = '2026-01-01T00:00:00.000Z';
const failure = { message: 'boom', stack: 'Error: boom\n    at x', kind: 'error' as const };

describe('DeadLetterPolicy', () => {
  const blocks = blocked({
    d1: { dead: 'j0', state: 'blocked', since },
    d2: { dead: 'j5', state: 'retry', since },
  });
  const block = new DeadLetterPolicy('block', blocks);
  const skip = new DeadLetterPolicy('skip', blocks);

  it('admits: events of a blocked document park behind it (block), run (skip); its own dead letter is dropped', () => {
    expect(block.admit(eventTask(job('j1', 'free'), 'j1'))).toBe('run');
    expect(block.admit(eventTask(job('j2', 'd1'), 'j2'))).toBe('park');
    expect(skip.admit(eventTask(job('j2', 'd1'), 'j2'))).toBe('run');
    expect(block.admit(eventTask(job('j0', 'd1'), 'j0'))).toBe('drop');
    expect(block.admit(eventTask(job('j3', null), 'j3'))).toBe('run'); // a barrier
  });

  it('admits re-runs unless their document is blocked again', () => {
    expect(block.admit(replayTask(job('j5', 'd2'), 'j5', 'd2'))).toBe('run');
    expect(block.admit(replayTask(job('j0', 'd1'), 'j0', 'd1'))).toBe('drop');
    expect(block.admit(replayLineTask('d2'))).toBe('run');
  });

  it('a failed event blocks its document under "block" only; a failed re-run blocks it while it is under a block', () => {
    const outcome = block.deadLettered(eventTask(job('j1', 'free'), 'j1'), failure, 3);
    expect(outcome).toMatchObject({
      kind: 'dead-lettered',
      error: { message: 'boom', stack: failure.stack },
      attempts: 3,
      blocks: 'free',
    });
    expect(skip.deadLettered(eventTask(job('j1', 'free'), 'j1'), failure, 3)).toMatchObject({
      blocks: null,
    });
    expect(block.deadLettered(eventTask(job('j3', null), 'j3'), failure, 1)).toMatchObject({
      blocks: null,
    });
    expect(skip.deadLettered(replayTask(job('j5', 'd2'), 'j5', 'd2'), failure, 2)).toMatchObject({
      blocks: 'd2',
    });
    expect(block.deadLettered(replayTask(job('j9', 'x'), 'j9', 'x'), failure, 2)).toMatchObject({
      blocks: null,
    });
  });

  it('parks behind the dead letter that blocks the document', () => {
    expect(block.parked(eventTask(job('j2', 'd1'), 'j2'))).toMatchObject({
      kind: 'parked',
      doc: 'd1',
      blockedBy: 'j0',
    });
    expect(() => block.parked(eventTask(job('j1', 'free'), 'j1'))).toThrow(/not blocked/);
  });
});
