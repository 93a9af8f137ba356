/** The ring's record in Redis and the workers' handoff flags (see codecs/ring.ts). */
import type { Redis } from 'ioredis';
import { decodeRing, encodeRing, type StoredEpoch } from './codecs/ring.js';
import { eventQueueName, ringKey, workerKeys } from './keys.js';
import { FencedError } from './fenced-error.js';
import { Scripts } from './scripts.js';

/** How long a handoff flag outlives its checkpoint (held jobs of that epoch check it). */
export const HANDOFF_TTL_S = 14 * 24 * 3600;

/** The ring changed under this process (another ingest wrote it): read it again. */
export class RingChangedError extends Error {
  constructor(key: string) {
    super(`the ring key "${key}" changed while this ingest was changing it`);
    this.name = 'RingChangedError';
  }
}

/** What fences a leader's ring writes: the ring's fence copy, and each queue's (handoffs). */
export interface RingFence {
  /** ingestKeys().ringFence */
  key: string;
  /** ingestKeys().queueFence */
  queueKey: (queue: string) => string;
  /** This term's fencing number. */
  value: number;
}

export class RingStore {
  readonly key: string;
  /** The record as last read or written (null: absent; undefined: not read yet). */
  private held: string | null | undefined = undefined;
  /** A standby-capable ingest's fence copy for the ring, and its number of this term. */
  private fence: RingFence | null = null;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {
    this.key = ringKey(prefix);
  }

  /**
   * Fences `save` (null: unfenced): raises the ring's fence copy (ingestKeys().ringFence) to this
   * term's number first, so that no earlier leader changes the ring from here on. Throws
   * FencedError when a newer leader raised it first.
   */
  async setFence(fence: RingFence | null): Promise<void> {
    this.fence = null;
    if (fence === null) return;
    const held = await Scripts.of(this.redis).raiseFence(fence.key, fence.value);
    if (held > fence.value) {
      throw new FencedError('raising the fence of the ring', fence.value, String(held));
    }
    this.fence = fence;
  }

  /** The stored epochs, oldest first, or null when no ring is stored yet. */
  async load(): Promise<StoredEpoch[] | null> {
    const raw = await this.redis.get(this.key);
    this.held = raw;
    return raw === null ? null : decodeRing(raw, this.key);
  }

  /**
   * Stores `epochs` as the ring if the key still holds what this store last read or wrote
   * (compare-and-set: two ingests never both make epoch e+1).
   */
  async save(epochs: readonly StoredEpoch[]): Promise<void> {
    if (this.held === undefined) await this.load();
    const value = encodeRing(epochs);
    const scripts = Scripts.of(this.redis);
    const fence = this.fence;
    const outcome = fence
      ? await scripts.replaceFenced(this.key, fence, this.held ?? null, value)
      : (await scripts.replacePosition(this.key, this.held ?? null, value))
        ? 'stored'
        : 'changed';
    if (outcome === 'fenced') {
      throw new FencedError('changing the ring', fence!.value, await this.redis.get(fence!.key));
    }
    if (outcome === 'changed') {
      this.held = undefined;
      throw new RingChangedError(this.key);
    }
    this.held = value;
  }

  /**
   * Marks worker `worker`'s checkpoint of `epoch` (a ring epoch, or a routing key change's id)
   * as passed. Fenced (setFence) by the worker's queue's fence copy, which shares the worker's
   * slot: a deposed leader cannot mark a handoff that the leader's own ring change of that epoch
   * would then find done too early.
   */
  async markHandoff(worker: string, epoch: number | string): Promise<void> {
    const key = workerKeys(this.prefix, worker).handoff(epoch);
    const fence = this.fence;
    if (fence === null) {
      await this.redis.set(key, '1', 'EX', HANDOFF_TTL_S);
      return;
    }
    const queueFence = { key: fence.queueKey(eventQueueName(worker)), value: fence.value };
    if (!(await Scripts.of(this.redis).setFenced(key, queueFence, '1', HANDOFF_TTL_S))) {
      throw new FencedError(
        `marking the handoff of ${worker} at epoch ${epoch}`,
        fence.value,
        await this.redis.get(queueFence.key),
      );
    }
  }

  /** Which of the handoffs (worker, epoch) have passed, in the order asked (one round trip). */
  async handoffsDone(
    handoffs: readonly { worker: string; epoch: number | string }[],
  ): Promise<boolean[]> {
    if (handoffs.length === 0) return [];
    // One EXISTS per key, not MGET nor a pipeline: on a Redis Cluster the keys live in the
    // slots of different workers, on different masters (ioredis sends a pipeline to one node).
    // Sent together, they still cost one round trip per node.
    const replies = await Promise.all(
      handoffs.map(({ worker, epoch }) =>
        this.redis.exists(workerKeys(this.prefix, worker).handoff(epoch)),
      ),
    );
    return replies.map((value) => value === 1);
  }
}

/** A new epoch after `epochs` with `names`, switching after `from`. */
export function nextEpoch(
  epochs: readonly StoredEpoch[],
  names: readonly string[],
  from: string,
  now: Date,
): StoredEpoch[] {
  const last = epochs[epochs.length - 1];
  const epoch: StoredEpoch = {
    epoch: (last?.epoch ?? 0) + 1,
    names: [...names],
    from: last ? from : '',
    at: now.toISOString(),
  };
  return [...epochs, epoch];
}
