import { Timestamp } from 'mongodb';
import { parseDateTime, tokenData, type Logger } from '@changeq/shared';
import { PositionStore, decodeStored, describePosition } from '@changeq/store';
import { confirm } from '../confirm.js';
import { connectRedis, refuseWhileIngestRuns } from '../connect.js';
import { clusterTimeDate, clusterTimeJson, clusterTimeText } from '../format.js';
import type { Settings } from '../settings.js';

/** `changeq token show --json`, version 1. */
export type TokenReport =
  | { version: 1; key: string; kind: 'none' }
  | {
      version: 1;
      key: string;
      kind: 'token';
      token: unknown;
      clusterTime: { t: number; i: number } | null;
      time: string | null;
      wallTime: string | null;
      savedAt: string;
    }
  | {
      version: 1;
      key: string;
      kind: 'startAt';
      clusterTime: { t: number; i: number };
      time: string;
      savedAt: string;
      reason: string;
    };

export function tokenReport(raw: string | null, key: string): TokenReport {
  if (raw === null) return { version: 1, key, kind: 'none' };
  const stored = decodeStored(raw, key);
  if (stored.kind === 'marker') {
    const m = stored.marker;
    return {
      version: 1,
      key,
      kind: 'startAt',
      clusterTime: clusterTimeJson(m.startAt),
      time: clusterTimeDate(m.startAt).toISOString(),
      savedAt: m.savedAt.toISOString(),
      reason: m.reason,
    };
  }
  const p = stored.position;
  const time = p.clusterTime ? clusterTimeDate(p.clusterTime) : p.wallTime;
  return {
    version: 1,
    key,
    kind: 'token',
    token: p.token,
    clusterTime: p.clusterTime ? clusterTimeJson(p.clusterTime) : null,
    time: time ? time.toISOString() : null,
    wallTime: p.wallTime ? p.wallTime.toISOString() : null,
    savedAt: p.savedAt.toISOString(),
  };
}

function describeStored(raw: string, key: string): string {
  const stored = decodeStored(raw, key);
  return stored.kind === 'position'
    ? `the resume token at ${describePosition(stored.position)}`
    : `the start time ${clusterTimeDate(stored.marker.startAt).toISOString()}`;
}

export async function tokenShow(settings: Settings, options: { json: boolean }): Promise<void> {
  const redis = await connectRedis(settings);
  try {
    const store = new PositionStore(redis, settings.prefix, settings.ingestId);
    const key = store.keys.token;
    const raw = await store.raw();
    if (options.json) {
      process.stdout.write(`${JSON.stringify(tokenReport(raw, key), null, 2)}\n`);
      return;
    }
    if (raw === null) {
      process.stdout.write(
        `no token stored at ${key}: the next ingest start begins at START_AT (now, a time, or snapshot)\n`,
      );
      return;
    }
    const stored = decodeStored(raw, key);
    if (stored.kind === 'marker') {
      const m = stored.marker;
      process.stdout.write(
        [
          `key:        ${key}`,
          `start time: ${clusterTimeDate(m.startAt).toISOString()} (cluster time ${clusterTimeText(m.startAt)})`,
          `set:        ${m.savedAt.toISOString()}${m.reason ? ` by ${m.reason}` : ''}`,
          'the next ingest start streams every change from this time on, then stores a token here',
        ].join('\n') + '\n',
      );
      return;
    }
    const p = stored.position;
    const time = p.clusterTime ? clusterTimeDate(p.clusterTime) : p.wallTime;
    process.stdout.write(
      [
        `key:          ${key}`,
        `token:        ${tokenData(p.token) ?? JSON.stringify(p.token)}`,
        `cluster time: ${p.clusterTime ? `${clusterTimeText(p.clusterTime)} (${clusterTimeDate(p.clusterTime).toISOString()})` : 'unknown'}`,
        `wall time:    ${p.wallTime ? p.wallTime.toISOString() : 'unknown'}`,
        `stored:       ${p.savedAt.toISOString()}`,
        `the next ingest start continues after this position${time ? ` (${time.toISOString()})` : ''}`,
      ].join('\n') + '\n',
    );
  } finally {
    redis.disconnect();
  }
}

export interface DestructiveOptions {
  yes: boolean;
  ingestStopped: boolean;
}

export async function tokenReset(
  settings: Settings,
  options: DestructiveOptions,
  log: Logger,
): Promise<void> {
  const redis = await connectRedis(settings);
  try {
    const store = new PositionStore(redis, settings.prefix, settings.ingestId);
    const key = store.keys.token;
    await refuseWhileIngestRuns(redis, settings.ingestId, 'token reset', options.ingestStopped);
    const raw = await store.raw();
    if (raw === null) {
      process.stdout.write(`no token stored at ${key}; nothing to reset\n`);
      return;
    }
    let what: string;
    try {
      what = describeStored(raw, key);
    } catch {
      what = 'a corrupt token';
    }
    await confirm(`Delete ${what} at ${key}? The next ingest start then begins at START_AT`, {
      yes: options.yes,
      command: 'token reset',
    });
    await store.clear();
    log.info({ key, was: raw }, 'token deleted');
    process.stdout.write(
      `deleted ${what} at ${key}; the next ingest start begins at START_AT (now, a time, or snapshot)\n`,
    );
  } finally {
    redis.disconnect();
  }
}

/** Parses `--at` like START_AT's time: an ISO 8601 date-time a cluster time can hold. */
export function parseAt(raw: string): Date {
  return parseDateTime(raw, '--at', (example) => `pass a time such as --at ${example}`);
}

export async function tokenSet(
  settings: Settings,
  options: DestructiveOptions & { at: string },
  log: Logger,
): Promise<void> {
  const at = parseAt(options.at);
  const redis = await connectRedis(settings);
  try {
    const store = new PositionStore(redis, settings.prefix, settings.ingestId);
    const keys = store.keys;
    await refuseWhileIngestRuns(redis, settings.ingestId, 'token set', options.ingestStopped);
    const raw = await store.raw();
    let replacing = '';
    if (raw !== null) {
      try {
        replacing = ` (replacing ${describeStored(raw, keys.token)})`;
      } catch {
        replacing = ' (replacing a corrupt token)';
      }
    }
    const startAt = new Timestamp({ t: Math.floor(at.getTime() / 1000), i: 0 });
    // The per-queue watermarks stay: events a queue already received are not added twice.
    const replay = '; events the queues already received are skipped';
    await confirm(`Make the ingest start at ${at.toISOString()}${replacing}${replay}?`, {
      yes: options.yes,
      command: 'token set',
    });
    if (at.getTime() > Date.now()) {
      log.warn(
        { at: at.toISOString() },
        'the start time is in the future: the stream begins there',
      );
    }
    await store.saveStartMarker({
      startAt,
      savedAt: new Date(),
      reason: `changeq token set --at ${at.toISOString()}`,
    });
    log.info({ key: keys.token, startAt: at.toISOString(), replaced: raw }, 'start time stored');
    process.stdout.write(
      `stored the start time ${at.toISOString()} at ${keys.token}${replacing}; the next ingest start streams every change from then on${replay}\n`,
    );
  } finally {
    redis.disconnect();
  }
}
