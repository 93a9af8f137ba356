// The cluster clock: Timestamps (seconds, increment) that strictly increase with every write,
// following wall-clock seconds when it moves forward, as MongoDB's oplog timestamps do.
import { Timestamp } from 'bson';

export interface Ts {
  t: number;
  i: number;
}

export function compareTs(a: Ts, b: Ts): number {
  if (a.t !== b.t) return a.t < b.t ? -1 : 1;
  return a.i < b.i ? -1 : a.i > b.i ? 1 : 0;
}

export function toTimestamp(ts: Ts): Timestamp {
  return new Timestamp({ t: ts.t, i: ts.i });
}

export function fromTimestamp(ts: Timestamp): Ts {
  return { t: ts.t, i: ts.i };
}

/** The smallest timestamp after `ts`. */
export function nextTs(ts: Ts): Ts {
  return ts.i >= 0xffffffff ? { t: ts.t + 1, i: 0 } : { t: ts.t, i: ts.i + 1 };
}

export class ClusterClock {
  private last: Ts;

  constructor(initial?: Ts) {
    this.last = initial ?? { t: Math.floor(Date.now() / 1000), i: 0 };
  }

  /** The latest cluster time handed out or observed. */
  now(): Ts {
    return this.last;
  }

  /** Reserve the next timestamp for a write. */
  tick(): Ts {
    const secs = Math.floor(Date.now() / 1000);
    this.last = secs > this.last.t ? { t: secs, i: 1 } : nextTs(this.last);
    return this.last;
  }

  /** Move forward to a time seen elsewhere (gossiped $clusterTime, replayed log). */
  advance(ts: Ts): void {
    if (compareTs(ts, this.last) > 0) this.last = { t: ts.t, i: ts.i };
  }
}
