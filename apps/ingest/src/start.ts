/**
 * Deciding where the stream starts: after the stored resume token, at a stored start time
 * (`changeq token set --at`, `changeq resync`), or, when nothing is stored, where START_AT says
 * (now, a time, or after a snapshot copy). After a Redis failure the token key is read again and
 * held against what this ingest had stored: a position that is gone or older means Redis lost
 * writes, and the ingest stops (recording the loss, so that no restart takes the empty key for a
 * first start).
 */
import type { Timestamp } from 'mongodb';
import { BSON, UserError, compareTokenData, tokenData, type Logger } from '@changeq/shared';
import type { StartAt, StartOptions } from '@changeq/source';
import {
  describeLoss,
  describePosition,
  replayTime,
  type LostRecord,
  type StoredPosition,
  type StoredStart,
  type StreamStart,
} from '@changeq/store';
import type { EnqueuerPort, PositionPort } from './ports.js';

/** Where the stream goes on from, and what the token key holds as far as this ingest knows. */
export interface StartPlan {
  /** The stored position the stream continues after, if any. */
  position: StoredPosition | null;
  /** Where the stream opens while no position is stored: a time, or now (`{}`). */
  opensAt: StartOptions;
  /** What the token key held when the plan was made (held against it after a Redis failure). */
  held: StoredStart | null;
  /** A finished snapshot copy, to forget once the first position after it is stored. */
  snapshotToClear: boolean;
  /** Where the stream starts, for messages. */
  since: string;
}

export interface StartPorts {
  store: Pick<PositionPort, 'loadStart' | 'markLost' | 'keys'>;
  watermarks: Pick<EnqueuerPort, 'loadWatermarks' | 'clearWatermarks'>;
  /** Copies (or finishes copying) the watched collections: their start time; null when stopped. */
  snapshot: () => Promise<Timestamp | null>;
  now: () => number;
}

/** Where the stream opens: after the position, else at the plan's start. */
export function openOptions(plan: Pick<StartPlan, 'position' | 'opensAt'>): StartOptions {
  return plan.position ? { startAfter: plan.position.token } : plan.opensAt;
}

export function describeTimestamp(time: Timestamp): string {
  return `${new Date(time.getHighBitsUnsigned() * 1000).toISOString()} (cluster time ${time.getHighBitsUnsigned()}.${time.getLowBitsUnsigned()})`;
}

/**
 * Whether `found` (read from the token key now) can follow `held` (what this ingest had stored
 * or read there): null when it can, else what was lost. A position may only have moved on.
 */
export function lostSince(held: StoredStart | null, found: StoredStart | null): StreamStart | null {
  if (held === null || held.kind === 'lost') return null;
  if (found === null) return held;
  if (held.kind === 'position' && found.kind === 'position') {
    const before = tokenData(held.position.token);
    const now = tokenData(found.position.token);
    return before !== null && now !== null && compareTokenData(now, before) < 0 ? held : null;
  }
  return null;
}

/** The stop of an ingest whose position Redis lost, with the ways on. */
export function lostPositionError(record: LostRecord, key: string): UserError {
  const at = replayTime(record.had);
  return new UserError(
    `Redis lost this ingest's position: the token key "${key}" ${describeLoss(record)} (Redis restarted without its data, or from an older copy of it); jobs and watermarks written after that may be gone too, and changeq never restarts from "now" on its own`,
    `choose how to go on: \`changeq token set --at ${at ? at.toISOString() : '<ISO time>'}\` replays every change since the lost position (some jobs may run twice), \`changeq resync\` copies the watched collections again, or \`changeq token reset --yes\` starts at START_AT; run Redis with appendonly yes so that it keeps its data`,
  );
}

export class StartPlanner {
  constructor(
    private readonly ports: StartPorts,
    private readonly startAt: StartAt,
    private readonly log: Logger,
  ) {}

  /**
   * Reads the token key and decides where the stream starts. `held`: what the ingest had
   * stored there before a Redis failure (undefined at the first start). Null when stopped
   * during a snapshot copy.
   */
  async plan(held?: StoredStart | null): Promise<StartPlan | null> {
    const { store, watermarks } = this.ports;
    const stored = await store.loadStart();
    if (stored?.kind === 'lost') {
      // Jobs may be gone while the watermarks say they are there: a replay must add them again.
      await watermarks.clearWatermarks('stream');
      throw lostPositionError(stored.record, store.keys.token);
    }
    const lost = held === undefined ? null : lostSince(held, stored);
    if (lost) {
      const record: LostRecord = {
        had: lost,
        found: stored,
        detectedAt: new Date(this.ports.now()),
      };
      // Recorded first: a supervisor restarting this process into an empty Redis must not
      // take it for a first start.
      await store.markLost(record);
      await watermarks.clearWatermarks('stream');
      throw lostPositionError(record, store.keys.token);
    }
    await watermarks.loadWatermarks('stream');
    if (stored?.kind === 'marker') {
      // `changeq token set --at` or `changeq resync`: the first batch stores a real token.
      this.log.info(
        { startAt: describeTimestamp(stored.marker.startAt), reason: stored.marker.reason },
        'a start time is stored: the stream starts at it (START_AT is ignored)',
      );
      return {
        position: null,
        opensAt: { startAtOperationTime: stored.marker.startAt },
        held: stored,
        snapshotToClear: false,
        since: `start time ${describeTimestamp(stored.marker.startAt)}`,
      };
    }
    if (stored?.kind === 'position') {
      if (this.startAt.kind !== 'now') {
        this.log.info(
          { startAt: this.startAt.kind },
          'a resume token is stored: START_AT is ignored (changeq token reset forces a new start)',
        );
      }
      this.log.info(
        { resumeFrom: describePosition(stored.position) },
        'resuming after the stored resume token',
      );
      return {
        position: stored.position,
        opensAt: {},
        held: stored,
        snapshotToClear: false,
        since: describePosition(stored.position),
      };
    }
    let opensAt: StartOptions = {};
    let snapshotToClear = false;
    if (this.startAt.kind === 'snapshot') {
      const startAt = await this.ports.snapshot();
      if (!startAt) return null;
      opensAt = { startAtOperationTime: startAt };
      snapshotToClear = true;
    } else if (this.startAt.kind === 'time') {
      opensAt = {
        startAtOperationTime: new BSON.Timestamp({
          t: Math.floor(this.startAt.at.getTime() / 1000),
          i: 0,
        }),
      };
    }
    this.log.info(
      { resumeFrom: this.startAt.kind },
      'no resume token stored: starting from START_AT',
    );
    return {
      position: null,
      opensAt,
      held: null,
      snapshotToClear,
      since:
        'startAtOperationTime' in opensAt
          ? `start time ${describeTimestamp(opensAt.startAtOperationTime)}`
          : `START_AT=${this.startAt.kind}`,
    };
  }
}
