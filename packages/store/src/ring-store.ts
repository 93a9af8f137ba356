/** The ring's record in Redis and the workers' handoff flags (see codecs/ring.ts). */
import type { Redis } from 'ioredis';
import { decodeRing, encodeRing, type StoredEpoch } from './codecs/ring.js';
import { ringKey, workerKeys } from './keys.js';
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

export class RingStore {
  readonly key: string;
  /** The record as last read or written (null: absent; undefined: not read yet). */
  private held: string | null | undefined = undefined;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {
    this.key = ringKey(prefix);
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
    const stored = await Scripts.of(this.redis).replacePosition(this.key, this.held ?? null, value);
    if (!stored) {
      this.held = undefined;
      throw new RingChangedError(this.key);
    }
    this.held = value;
  }

  /** Marks worker `worker`'s checkpoint of `epoch` as passed. */
  async markHandoff(worker: string, epoch: number | string): Promise<void> {
    await this.redis.set(workerKeys(this.prefix, worker).handoff(epoch), '1', 'EX', HANDOFF_TTL_S);
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
