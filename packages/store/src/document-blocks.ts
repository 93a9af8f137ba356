/**
 * The documents a dead letter blocks (`dead_letter = "block"`): the hash `workerKeys().blocked`,
 * mirrored here, and each blocked document's line of parked events (see dead-letters.ts).
 */
import type { Redis } from 'ioredis';
import type { Logger } from '@changeq/shared';
import { encodeBlockState, parseBlockState, type BlockState } from './codecs/block-state.js';
import type { workerKeys } from './keys.js';
import { Scripts } from './scripts.js';

export class DocumentBlocks {
  private readonly redis: Redis;
  private readonly keys: ReturnType<typeof workerKeys>;
  private readonly log: Logger;
  private readonly blocked = new Map<string, BlockState>();

  constructor(redis: Redis, keys: ReturnType<typeof workerKeys>, log: Logger) {
    this.redis = redis;
    this.keys = keys;
    this.log = log;
  }

  async load(): Promise<void> {
    const blocked = await this.redis.hgetall(this.keys.blocked);
    for (const [doc, raw] of Object.entries(blocked)) {
      const state = parseBlockState(raw);
      if (state) this.blocked.set(doc, state);
    }
  }

  get(doc: string): BlockState | undefined {
    return this.blocked.get(doc);
  }

  has(doc: string): boolean {
    return this.blocked.has(doc);
  }

  entries(): IterableIterator<[string, BlockState]> {
    return this.blocked.entries();
  }

  async set(doc: string, state: BlockState): Promise<void> {
    await this.redis.hset(this.keys.blocked, doc, encodeBlockState(state));
    this.blocked.set(doc, state);
  }

  /** Unblocks the document once its re-run is done (see lua/unblockDocument-2.lua). */
  async unblockIfDone(doc: string): Promise<void> {
    const done = await Scripts.of(this.redis).unblockDocument(
      { blocked: this.keys.blocked, line: this.keys.parked(doc) },
      doc,
    );
    if (done) {
      this.blocked.delete(doc);
      this.log.info({ doc }, 'document unblocked: its dead letter and parked events are done');
    }
  }

  /** Adds an event to the document's parked line (once); returns its place in the line. */
  async addParked(doc: string, jobId: string): Promise<number> {
    return Scripts.of(this.redis).parkEvent(
      { line: this.keys.parked(doc), seq: this.keys.parkSeq },
      jobId,
    );
  }

  /** The ids of the document's parked events, in line order. */
  parkedIds(doc: string): Promise<string[]> {
    return this.redis.zrange(this.keys.parked(doc), 0, -1);
  }

  async removeParked(doc: string, jobId: string): Promise<void> {
    await this.redis.zrem(this.keys.parked(doc), jobId);
  }
}
