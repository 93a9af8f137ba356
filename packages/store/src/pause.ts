/**
 * Pause and resume, through Redis: the operator sets a flag (`changeq pause`), the active ingest
 * or worker obeys it at its next safe point and reports what it did in a key that expires when
 * the process dies. The flag belongs to the ingest id or the worker name, not to a process: a
 * standby that takes the lease over reads it and stays paused.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import {
  encodePause,
  parsePauseReport,
  parsePauseRequest,
  type PauseReport,
  type PauseRequest,
  type PauseState,
} from './codecs/pause.js';
import { pauseKeys, type PauseTarget } from './keys.js';

/** How long a report outlives its last refresh (a running process refreshes it every third). */
export const PAUSE_REPORT_TTL_MS = 15_000;

/** `ingest default`, `worker billing`: for messages. */
export function describePauseTarget(target: PauseTarget): string {
  return target.kind === 'ingest' ? `ingest ${target.id}` : `worker ${target.name}`;
}

/** Sets (pause) or clears (resume) the flag; the request set, or null on resume. */
export async function requestPause(
  redis: Redis,
  prefix: string,
  target: PauseTarget,
  paused: boolean,
): Promise<PauseRequest | null> {
  const keys = pauseKeys(prefix, target);
  if (!paused) {
    await redis.del(keys.pause);
    return null;
  }
  const request: PauseRequest = { id: randomUUID(), at: new Date().toISOString() };
  await redis.set(keys.pause, encodePause(request));
  return request;
}

/** The flag and the active process's report (each null when absent). */
export async function readPause(
  redis: Redis,
  prefix: string,
  target: PauseTarget,
): Promise<{ request: PauseRequest | null; report: PauseReport | null }> {
  const keys = pauseKeys(prefix, target);
  // Two GETs, not MGET: the keys need not share a cluster slot.
  const [request, report] = await Promise.all([redis.get(keys.pause), redis.get(keys.pauseState)]);
  return { request: parsePauseRequest(request), report: parsePauseReport(report) };
}

/**
 * The process side: reads the flag (at most once per `pollMs`, so a batch boundary costs nothing
 * most of the time) and writes the report when it changes, and every third of its lifetime.
 */
export class PauseWatch {
  private readonly keys: { pause: string; pauseState: string };
  private cached: { request: PauseRequest | null; at: number } | null = null;
  private reported: { key: string; at: number } | null = null;
  private since = new Date();
  private lastState: PauseState | null = null;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    target: PauseTarget,
    readonly pollMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.keys = pauseKeys(prefix, target);
  }

  /** The pause in force (null: none), read from Redis when the last read is `pollMs` old. */
  async request(): Promise<PauseRequest | null> {
    const now = this.now();
    if (this.cached === null || now - this.cached.at >= this.pollMs) {
      const request = parsePauseRequest(await this.redis.get(this.keys.pause));
      this.cached = { request, at: now };
    }
    return this.cached.request;
  }

  /** Forgets the cached flag: the next `request()` reads Redis. */
  refresh(): void {
    this.cached = null;
  }

  /** Writes the report when it changed or is a third of its lifetime old. */
  async report(state: PauseState, request: PauseRequest | null, running?: number): Promise<void> {
    const now = this.now();
    if (state !== this.lastState) {
      this.lastState = state;
      this.since = new Date(now);
    }
    const body: PauseReport = {
      state,
      request: request?.id ?? null,
      since: this.since.toISOString(),
      pid: process.pid,
      host: hostname(),
      ...(running !== undefined ? { running } : {}),
    };
    const key = encodePause(body);
    if (this.reported?.key === key && now - this.reported.at < PAUSE_REPORT_TTL_MS / 3) return;
    await this.redis.set(this.keys.pauseState, key, 'PX', PAUSE_REPORT_TTL_MS);
    this.reported = { key, at: now };
  }

  /**
   * Removes the report (a process stopping), unless it is not this process's: a successor (a
   * standby that took the lease over) may have written its own meanwhile.
   */
  async clear(): Promise<void> {
    if (this.reported === null) return;
    this.reported = null;
    this.lastState = null;
    const current = parsePauseReport(await this.redis.get(this.keys.pauseState));
    if (current?.pid === process.pid && current.host === hostname()) {
      await this.redis.del(this.keys.pauseState);
    }
  }
}
