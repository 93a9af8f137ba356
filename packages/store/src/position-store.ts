/** The ingest's resume position and snapshot progress in Redis. */
import type { Redis } from 'ioredis';
import { ingestKeys } from './keys.js';
import {
  decodeStored,
  encodePosition,
  encodeStartMarker,
  type StartMarker,
  type StoredPosition,
  type StoredStart,
} from './codecs/position.js';
import {
  decodeSnapshotProgress,
  encodeSnapshotProgress,
  type SnapshotProgress,
} from './codecs/snapshot-progress.js';

export class PositionStore {
  readonly keys: ReturnType<typeof ingestKeys>;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    ingestId: string,
  ) {
    this.keys = ingestKeys(prefix, ingestId);
  }

  /** The token key's text as stored: what operators are shown, or replace, even when corrupt. */
  raw(): Promise<string | null> {
    return this.redis.get(this.keys.token);
  }

  async load(): Promise<StoredPosition | null> {
    const stored = await this.loadStart();
    return stored?.kind === 'position' ? stored.position : null;
  }

  /** The stored position or start marker, if any. */
  async loadStart(): Promise<StoredStart | null> {
    const raw = await this.redis.get(this.keys.token);
    return raw === null ? null : decodeStored(raw, this.keys.token);
  }

  /** Makes the next start begin at `startAt` (replacing any stored token). */
  async saveStartMarker(marker: StartMarker): Promise<void> {
    await this.redis.set(this.keys.token, encodeStartMarker(marker));
  }

  async save(position: StoredPosition): Promise<void> {
    await this.redis.set(this.keys.token, encodePosition(position));
  }

  async clear(): Promise<void> {
    await this.redis.del(this.keys.token);
  }

  /**
   * Stores the start marker of a finished copy and forgets the copy, in one transaction (a later
   * START_AT=snapshot must make a new copy, not reuse this one's start time).
   */
  async finishResync(marker: StartMarker): Promise<void> {
    await this.redis
      .multi()
      .set(this.keys.token, encodeStartMarker(marker))
      .del(this.keys.snapshot)
      .exec();
  }

  /** The snapshot key's text as stored (see summarizeSnapshotProgress). */
  rawSnapshot(): Promise<string | null> {
    return this.redis.get(this.keys.snapshot);
  }

  /** The progress of a snapshot copy, if one was started and not cleared. */
  async loadSnapshot(): Promise<SnapshotProgress | null> {
    const raw = await this.redis.get(this.keys.snapshot);
    return raw ? decodeSnapshotProgress(raw) : null;
  }

  async saveSnapshot(progress: SnapshotProgress): Promise<void> {
    await this.redis.set(this.keys.snapshot, encodeSnapshotProgress(progress));
  }

  /** Forgets a copy (finished: once the stream stored its first token after it; or --fresh). */
  async clearSnapshot(): Promise<void> {
    await this.redis.del(this.keys.snapshot);
  }
}
