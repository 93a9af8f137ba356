/**
 * The new owner's side of a ring change: a job whose document moved carries a hold on its old
 * owners' checkpoints (see RingRouter in @changeq/shared); it is admitted only once each of them
 * wrote its handoff flag. Every waiting task of the session shares one poll: one round trip for
 * all pending flags every `pollMs`. A flag seen once is remembered (flags are never unset), so
 * later jobs of the same epoch pass without asking Redis.
 *
 * The wait holds no handler slot: other documents go on; later events of the same document wait
 * behind it in its line, as they must.
 */
import type { Hold } from '@changeq/shared';

export interface HandoffFlags {
  handoffsDone(handoffs: readonly { worker: string; epoch: number | string }[]): Promise<boolean[]>;
}

export interface HoldsOptions {
  pollMs?: number;
  /** A poll failed (Redis unreachable): it is tried again at the next interval. */
  onError?: (error: unknown) => void;
  /** A handoff passed: how long each task that waited for it was held. */
  onPassed?: (handoff: string, heldMs: number[]) => void;
  /** The number of waiting tasks changed. */
  onWaiting?: (waiting: number, releasedMs: readonly number[]) => void;
}

interface Waiter {
  remaining: Set<string>;
  since: number;
  resolve: (passed: boolean) => void;
}

const keyOf = (worker: string, epoch: number | string) => `${worker}@${epoch}`;

export class Holds {
  private readonly passed = new Set<string>();
  private readonly pending = new Map<string, { worker: string; epoch: number | string }>();
  private readonly waiters = new Set<Waiter>();
  private timer: NodeJS.Timeout | null = null;
  private polling = false;
  private readonly pollMs: number;

  constructor(
    private readonly flags: HandoffFlags,
    private readonly options: HoldsOptions = {},
  ) {
    this.pollMs = options.pollMs ?? 75;
  }

  /** Tasks waiting now. */
  get held(): number {
    return this.waiters.size;
  }

  /**
   * Resolves true once every handoff the hold names has passed, false when `signal` fires first
   * (the process stops: the task is left unfinished).
   */
  wait(hold: Hold, signal: AbortSignal): Promise<boolean> {
    const keys = hold.workers
      .map((worker) => keyOf(worker, hold.epoch))
      .filter((key) => !this.passed.has(key));
    if (keys.length === 0) return Promise.resolve(true);
    if (signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        remaining: new Set(keys),
        since: performance.now(),
        resolve: (passed) => {
          signal.removeEventListener('abort', abort);
          this.waiters.delete(waiter);
          this.options.onWaiting?.(this.waiters.size, passed ? [performance.now() - waiter.since] : []);
          resolve(passed);
        },
      };
      const abort = () => waiter.resolve(false);
      signal.addEventListener('abort', abort, { once: true });
      this.waiters.add(waiter);
      this.options.onWaiting?.(this.waiters.size, []);
      for (const worker of hold.workers) {
        const key = keyOf(worker, hold.epoch);
        if (waiter.remaining.has(key)) this.pending.set(key, { worker, epoch: hold.epoch });
      }
      this.schedule(0);
    });
  }

  /** Stops polling; waiting tasks stay waiting until their signal fires. */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pending.clear();
  }

  private schedule(ms: number): void {
    if (this.timer !== null || this.polling) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.poll();
    }, ms);
  }

  private async poll(): Promise<void> {
    // Handoffs nobody waits for any more (their tasks were left at a stop) are not asked.
    const wanted = new Set([...this.waiters].flatMap((waiter) => [...waiter.remaining]));
    for (const key of this.pending.keys()) if (!wanted.has(key)) this.pending.delete(key);
    if (this.pending.size === 0) return;
    this.polling = true;
    const asked = [...this.pending];
    try {
      const done = await this.flags.handoffsDone(asked.map(([, handoff]) => handoff));
      asked.forEach(([key], i) => {
        if (done[i] === true) this.pass(key);
      });
    } catch (error) {
      this.options.onError?.(error);
    } finally {
      this.polling = false;
    }
    if (this.pending.size > 0) this.schedule(this.pollMs);
  }

  private pass(key: string): void {
    // A routing key change's handoff (`worker@key-…`) holds one job only: remembering it would
    // grow the set by one entry per key change for the life of the process.
    if (!key.includes('@key-')) this.passed.add(key);
    this.pending.delete(key);
    const heldMs: number[] = [];
    for (const waiter of [...this.waiters]) {
      if (!waiter.remaining.delete(key) || waiter.remaining.size > 0) continue;
      heldMs.push(performance.now() - waiter.since);
      waiter.resolve(true);
    }
    if (heldMs.length > 0) this.options.onPassed?.(key, heldMs);
  }
}
