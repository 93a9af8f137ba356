import { describe, expect, it, test } from 'vitest';
import { Backoff, backoffDelay, sleep, withinTime } from '../src/backoff.js';

describe('backoffDelay', () => {
  it('is full jitter under an exponential, capped ceiling', () => {
    expect(backoffDelay(1, 100, 1_000, () => 0.999)).toBe(99);
    expect(backoffDelay(3, 100, 1_000, () => 0.999)).toBe(399);
    expect(backoffDelay(10, 100, 1_000, () => 0.999)).toBe(999);
    expect(backoffDelay(4, 100, 1_000, () => 0)).toBe(0);
  });
});

describe('backoff', () => {
  test('grows exponentially with full jitter up to the cap, and resets', () => {
    const backoff = new Backoff(100, 1000, () => 1);
    expect([1, 2, 3, 4, 5].map(() => backoff.next())).toEqual([100, 200, 400, 800, 1000]);
    backoff.reset();
    expect(backoff.next()).toBe(100);
    const jittered = new Backoff(100, 1000, () => 0.5);
    expect(jittered.next()).toBe(50);
  });
});

describe('sleep', () => {
  test('resolves true after the delay, false at once when aborted (before or during)', async () => {
    expect(await sleep(1)).toBe(true);
    const aborted = new AbortController();
    aborted.abort();
    expect(await sleep(60_000, aborted.signal)).toBe(false);
    const later = new AbortController();
    const slept = sleep(60_000, later.signal);
    later.abort();
    expect(await slept).toBe(false);
  });
});

describe('withinTime', () => {
  it("is the promise's answer when it comes first, and what expired() gives when time runs out", async () => {
    expect(await withinTime(Promise.resolve(7), 1_000, () => new Error('late'))).toBe(7);
    const never = new Promise<number>(() => undefined);
    await expect(withinTime(never, 10, () => new Error('no answer'))).rejects.toThrow('no answer');
  });

  it('leaves a promise that fails after the timeout unreported (no unhandled rejection)', async () => {
    let fail: (error: Error) => void = () => undefined;
    const late = new Promise<never>((_, reject) => (fail = reject));
    await expect(withinTime(late, 10, () => new Error('expired'))).rejects.toThrow('expired');
    fail(new Error('too late'));
    await new Promise((resolve) => setTimeout(resolve, 20)); // vitest fails on an unhandled one
  });
});
