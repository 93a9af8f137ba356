/** The ingest's resume position and snapshot progress in Redis. */
import type { Redis } from 'ioredis';
import { ingestKeys } from './keys.js';
import {
  corruptTokenError,
  decodeStored,
  encodeLostRecord,
  encodePosition,
  encodeStartMarker,
  type KeyContent,
  type LostRecord,
  type StartMarker,
  type StoredPosition,
  type StoredStart,
} from './codecs/position.js';
import {
  decodeSnapshotProgress,
  encodeSnapshotProgress,
  type SnapshotProgress,
} from './codecs/snapshot-progress.js';
import { FencedError } from './fenced-error.js';
import { Scripts } from './scripts.js';

/**
 * The token key no longer holds what this store last read or wrote there: Redis lost writes, or
 * another process wrote it. Nothing was written; the ingest reads the key again to see which.
 */
export class PositionChangedError extends Error {
  constructor(key: string) {
    super(`the token key "${key}" no longer holds the position this ingest stored there`);
    this.name = 'PositionChangedError';
  }
}

export class PositionStore {
  readonly keys: ReturnType<typeof ingestKeys>;
  /**
   * What the token key held when this store last read or wrote it (null: nothing; undefined:
   * not read yet). `save` replaces only that, so a position lost under a running ingest is
   * noticed at its next save instead of being written over.
   */
  private held: string | null | undefined = undefined;
  /** A standby-capable ingest's fencing number: `save` then also requires the lease's counter. */
  private fence: number | null = null;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    ingestId: string,
  ) {
    this.keys = ingestKeys(prefix, ingestId);
  }

  /**
   * Fences `save` with the ingest lease's number of this term (null: unfenced): a position is
   * stored only while the lease's fencing counter still holds it, so a deposed leader (paused or
   * cut off past its lease) cannot store one after another ingest took over.
   */
  setFence(fence: number | null): void {
    this.fence = fence;
  }

  /** The token key as stored, whatever it holds: what operators are shown, or replace. */
  async inspect(): Promise<KeyContent> {
    const type = await this.redis.type(this.keys.token);
    return { type, raw: type === 'string' ? await this.redis.get(this.keys.token) : null };
  }

  /** The token key's text as stored (null when absent or not a string). */
  async raw(): Promise<string | null> {
    return (await this.inspect()).raw;
  }

  async load(): Promise<StoredPosition | null> {
    const stored = await this.loadStart();
    return stored?.kind === 'position' ? stored.position : null;
  }

  /** What the token key holds, if anything (a UserError naming the key when it is corrupt). */
  async loadStart(): Promise<StoredStart | null> {
    const { type, raw } = await this.inspect();
    if (type !== 'string' && type !== 'none') {
      throw corruptTokenError(this.keys.token, `it is a Redis ${type}, not a string`);
    }
    this.held = raw;
    return raw === null ? null : decodeStored(raw, this.keys.token);
  }

  /** Makes the next start begin at `startAt` (replacing any stored token). */
  async saveStartMarker(marker: StartMarker): Promise<void> {
    await this.write(encodeStartMarker(marker));
  }

  /**
   * Stores the position the stream continues after. Once the key was read (`loadStart`), only
   * what it held then, or what this store wrote since, is replaced: otherwise nothing is written
   * and PositionChangedError says so.
   */
  async save(position: StoredPosition): Promise<void> {
    const value = encodePosition(position);
    if (this.held === undefined) {
      await this.write(value);
      return;
    }
    if (this.fence !== null) {
      const fence = { key: this.keys.fence, value: this.fence };
      const outcome = await Scripts.of(this.redis).replaceFenced(
        this.keys.token,
        fence,
        this.held,
        value,
      );
      if (outcome === 'fenced') {
        throw new FencedError(
          'storing the resume token',
          this.fence,
          await this.redis.get(fence.key),
        );
      }
      if (outcome === 'changed') throw new PositionChangedError(this.keys.token);
      this.held = value;
      return;
    }
    const stored = await Scripts.of(this.redis).replacePosition(this.keys.token, this.held, value);
    if (!stored) throw new PositionChangedError(this.keys.token);
    this.held = value;
  }

  /** Records that the position was lost (see LostRecord), in place of whatever the key holds. */
  async markLost(record: LostRecord): Promise<void> {
    await this.write(encodeLostRecord(record));
  }

  async clear(): Promise<void> {
    await this.redis.del(this.keys.token);
    this.held = null;
  }

  private async write(value: string): Promise<void> {
    await this.redis.set(this.keys.token, value);
    this.held = value;
  }

  /**
   * Stores the start marker of a finished copy and forgets the copy, in one transaction (a later
   * START_AT=snapshot must make a new copy, not reuse this one's start time).
   */
  async finishResync(marker: StartMarker): Promise<void> {
    const value = encodeStartMarker(marker);
    await this.redis.multi().set(this.keys.token, value).del(this.keys.snapshot).exec();
    this.held = value;
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
