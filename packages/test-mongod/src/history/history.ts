// The bounded change history (our "oplog window"). Entries are kept in order of
// (clusterTime, txnOpIndex); the oldest are trimmed by count and age. `floor` is the position of
// the newest entry ever trimmed (or of the initialisation marker): resuming at or before it
// would miss events, so it fails with ChangeStreamHistoryLost (286).
// Periodic no-op entries (op 'noop', see Engine.writeNoop) are kept in order like any entry and
// age out like any entry, but the count limit counts change events only: an idle server's
// no-ops never push a real event out of the window.
import { MongoServerError } from '../errors.js';
import { compareTs, nextTs } from './clock.js';
import type { Ts } from './clock.js';
import type { HistoryEntry } from './entry.js';
import type { TokenPosition } from './token.js';

export interface HistoryLimits {
  maxEvents: number;
  maxAgeSeconds: number;
}

export interface Floor {
  ts: Ts;
  txnOpIndex: number;
}

function cmpPos(ts: Ts, idx: number, e: { ts: Ts; txnOpIndex: number }): number {
  return compareTs(ts, e.ts) || (idx < e.txnOpIndex ? -1 : idx > e.txnOpIndex ? 1 : 0);
}

export class ChangeHistory {
  private entries: HistoryEntry[] = [];
  private head = 0;
  /** Sequence number of entries[head]; sequence numbers never repeat within a process. */
  private headSeq = 0;
  /** Retained entries that are periodic no-ops (not counted by maxEvents). */
  private noops = 0;
  floor: Floor;
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly limits: HistoryLimits,
    floor: Floor,
  ) {
    this.floor = floor;
  }

  get firstSeq(): number {
    return this.headSeq;
  }

  /** One past the last sequence number. */
  get endSeq(): number {
    return this.headSeq + (this.entries.length - this.head);
  }

  get size(): number {
    return this.entries.length - this.head;
  }

  at(seq: number): HistoryEntry | undefined {
    if (seq < this.headSeq) return undefined;
    return this.entries[this.head + (seq - this.headSeq)];
  }

  last(): HistoryEntry | undefined {
    return this.entries.length > this.head ? this.entries[this.entries.length - 1] : undefined;
  }

  *retained(): Iterable<HistoryEntry> {
    for (let k = this.head; k < this.entries.length; k++) yield this.entries[k] as HistoryEntry;
  }

  append(entry: HistoryEntry): void {
    this.entries.push(entry);
    if (entry.op === 'noop') this.noops++;
  }

  /**
   * Drop entries beyond the window: older than maxAgeSeconds, or before the newest maxEvents
   * change events (no-ops are not counted). Returns how many were removed.
   */
  trim(now = Date.now()): number {
    const { maxEvents, maxAgeSeconds } = this.limits;
    const minWall = now - maxAgeSeconds * 1000;
    let removed = 0;
    while (this.entries.length - this.head > 0) {
      const e = this.entries[this.head] as HistoryEntry;
      const tooMany = this.entries.length - this.head - this.noops > maxEvents;
      if (!tooMany && e.wall.getTime() >= minWall) break;
      this.floor = { ts: e.ts, txnOpIndex: e.txnOpIndex };
      if (e.op === 'noop') this.noops--;
      this.head++;
      this.headSeq++;
      removed++;
    }
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
    return removed;
  }

  /** First sequence number whose entry is at or after (ts, idx). */
  lowerBound(ts: Ts, idx: number): number {
    let lo = this.head;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cmpPos(ts, idx, this.entries[mid] as HistoryEntry) > 0) lo = mid + 1;
      else hi = mid;
    }
    return this.headSeq + (lo - this.head);
  }

  /**
   * Where a stream resumed from `pos` continues: the sequence number of the first entry to
   * read and whether that entry's own event was already delivered (resume after a `drop` still
   * owes the `invalidate`). Throws 286 when the window no longer covers the position, and 280
   * when an event token names an entry that never existed.
   */
  resolve(pos: TokenPosition): { seq: number; afterMain: boolean } {
    if (pos.kind === 'hwm') {
      // Everything at or after pos.ts must still be retained.
      if (compareTs(pos.ts, nextTs(this.floor.ts)) < 0 && !this.floorIsHwm(pos.ts))
        throw historyLost();
      return { seq: this.lowerBound(pos.ts, 0), afterMain: false };
    }
    if (cmpPos(pos.ts, pos.txnOpIndex, this.floor) <= 0) throw historyLost();
    const seq = this.lowerBound(pos.ts, pos.txnOpIndex);
    const e = this.at(seq);
    if (!e || cmpPos(pos.ts, pos.txnOpIndex, e) !== 0) {
      throw new MongoServerError(
        280,
        'cannot resume stream; the resume token was not found in the change history of this server',
      );
    }
    return pos.fromInvalidate ? { seq: seq + 1, afterMain: false } : { seq, afterMain: true };
  }

  /** The initialisation marker is a floor that still allows starting exactly at its time. */
  private floorIsHwm(ts: Ts): boolean {
    return this.floor.txnOpIndex === -1 && compareTs(ts, this.floor.ts) >= 0;
  }

  onAppend(fn: () => void): () => void {
    this.waiters.add(fn);
    return () => this.waiters.delete(fn);
  }

  notify(): void {
    for (const fn of [...this.waiters]) fn();
  }
}

export function historyLost(): MongoServerError {
  return new MongoServerError(
    286,
    'Resume of change stream was not possible, as the resume point may no longer be in the oplog.',
  );
}
