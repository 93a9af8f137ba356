import { describe, expect, it } from 'vitest';
import { createLogger } from '@changeq/shared';
import type { StoredEpoch } from '@changeq/store';
import { MembershipWatch } from '../src/session/membership.js';

const epoch = (n: number, names: string[]): StoredEpoch => ({ epoch: n, names, from: '', at: '' });

describe('MembershipWatch', () => {
  it('follows a name into the ring, out of it while jobs remain, and to drained', async () => {
    let epochs: StoredEpoch[] = [epoch(1, ['a'])];
    let unfinished = 0;
    let held = 0;
    const watch = new MembershipWatch({
      worker: 'b',
      ring: { load: async () => epochs },
      queue: {
        getJobCounts: async () => ({ waiting: unfinished, active: 0 }),
      } as never,
      held: () => held,
      log: createLogger({ name: 'test', level: 'silent' }),
      signal: new AbortController().signal,
    });
    expect(await watch.check()).toBe('joining');
    epochs = [epoch(1, ['a']), epoch(2, ['a', 'b'])];
    expect(await watch.check()).toBe('active');
    epochs = [...epochs, epoch(3, ['a'])];
    unfinished = 2;
    expect(await watch.check()).toBe('draining');
    unfinished = 0;
    held = 1; // fetched, still running here
    expect(await watch.check()).toBe('draining');
    held = 0;
    expect(await watch.check()).toBe('drained');
  });
});
