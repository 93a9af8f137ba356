import { Timestamp } from 'mongodb';
import { parseDateTime, tokenData, type Logger } from '@changeq/shared';
import {
  PositionStore,
  describeStart,
  describeTokenKey,
  readTokenKey,
  replayTime,
  type KeyContent,
  type StreamStart,
} from '@changeq/store';
import { confirm } from '../confirm.js';
import { connectRedis, refuseWhileIngestRuns } from '../connect.js';
import { clusterTimeDate, clusterTimeJson, clusterTimeText } from '../format.js';
import type { Settings } from '../settings.js';

/** A place to start from, as `--json` shows it. */
type StartReport =
  | {
      kind: 'token';
      token: unknown;
      clusterTime: { t: number; i: number } | null;
      time: string | null;
      wallTime: string | null;
      savedAt: string;
    }
  | {
      kind: 'startAt';
      clusterTime: { t: number; i: number };
      time: string;
      savedAt: string;
      reason: string;
    };

/** `changeq token show --json`, version 1. */
export type TokenReport =
  | { version: 1; key: string; kind: 'none' }
  | ({ version: 1; key: string } & StartReport)
  | {
      version: 1;
      key: string;
      kind: 'lost';
      /** What the ingest had stored, and what it found in its place (null: nothing). */
      had: StartReport;
      found: StartReport | null;
      detectedAt: string;
      /** Where `token set --at` replays from to lose nothing. */
      replayFrom: string | null;
    }
  | {
      version: 1;
      key: string;
      kind: 'corrupt';
      /** Redis' type of the key; `raw` is its text when it is a string. */
      type: string;
      raw: string | null;
      problem: string;
    };

function startReport(start: StreamStart): StartReport {
  if (start.kind === 'marker') {
    const m = start.marker;
    return {
      kind: 'startAt',
      clusterTime: clusterTimeJson(m.startAt),
      time: clusterTimeDate(m.startAt).toISOString(),
      savedAt: m.savedAt.toISOString(),
      reason: m.reason,
    };
  }
  const p = start.position;
  const time = p.clusterTime ? clusterTimeDate(p.clusterTime) : p.wallTime;
  return {
    kind: 'token',
    token: p.token,
    clusterTime: p.clusterTime ? clusterTimeJson(p.clusterTime) : null,
    time: time ? time.toISOString() : null,
    wallTime: p.wallTime ? p.wallTime.toISOString() : null,
    savedAt: p.savedAt.toISOString(),
  };
}

export function tokenReport(content: KeyContent, key: string): TokenReport {
  const state = readTokenKey(content, key);
  switch (state.kind) {
    case 'none':
      return { version: 1, key, kind: 'none' };
    case 'corrupt':
      return { version: 1, key, ...state };
    case 'lost': {
      const { had, found, detectedAt } = state.record;
      const replay = replayTime(had);
      return {
        version: 1,
        key,
        kind: 'lost',
        had: startReport(had),
        found: found && startReport(found),
        detectedAt: detectedAt.toISOString(),
        replayFrom: replay && replay.toISOString(),
      };
    }
    default:
      return { version: 1, key, ...startReport(state) };
  }
}

/** What the token key holds, for the human: the lines of `changeq token show`. */
function renderToken(content: KeyContent, key: string): string[] {
  const state = readTokenKey(content, key);
  switch (state.kind) {
    case 'none':
      return [
        `no token stored at ${key}: the next ingest start begins at START_AT (now, a time, or snapshot)`,
      ];
    case 'corrupt':
      return [
        `key:     ${key}`,
        `type:    ${state.type}`,
        ...(state.raw === null ? [] : [`value:   ${state.raw}`]),
        `problem: ${state.problem}`,
        'the ingest refuses to start until it is replaced: `changeq token set --at <ISO time>` continues from a known time, `changeq token reset --yes` deletes it (the next start begins at START_AT)',
      ];
    case 'lost': {
      const { had, found, detectedAt } = state.record;
      const replay = replayTime(had);
      return [
        `key:      ${key}`,
        `LOST:     Redis lost this ingest's position (found ${detectedAt.toISOString()})`,
        `had:      ${describeStart(had)}`,
        `found:    ${found ? describeStart(found) : 'nothing'}`,
        `the ingest refuses to start until an operator chooses: \`changeq token set --at ${replay ? replay.toISOString() : '<ISO time>'}\` replays every change since the lost position, \`changeq resync\` copies the watched collections again, \`changeq token reset --yes\` starts at START_AT`,
      ];
    }
    case 'marker': {
      const m = state.marker;
      return [
        `key:        ${key}`,
        `start time: ${clusterTimeDate(m.startAt).toISOString()} (cluster time ${clusterTimeText(m.startAt)})`,
        `set:        ${m.savedAt.toISOString()}${m.reason ? ` by ${m.reason}` : ''}`,
        'the next ingest start streams every change from this time on, then stores a token here',
      ];
    }
    case 'position': {
      const p = state.position;
      const time = p.clusterTime ? clusterTimeDate(p.clusterTime) : p.wallTime;
      return [
        `key:          ${key}`,
        `token:        ${tokenData(p.token) ?? JSON.stringify(p.token)}`,
        `cluster time: ${p.clusterTime ? `${clusterTimeText(p.clusterTime)} (${clusterTimeDate(p.clusterTime).toISOString()})` : 'unknown'}`,
        `wall time:    ${p.wallTime ? p.wallTime.toISOString() : 'unknown'}`,
        `stored:       ${p.savedAt.toISOString()}`,
        `the next ingest start continues after this position${time ? ` (${time.toISOString()})` : ''}`,
      ];
    }
  }
}

export async function tokenShow(settings: Settings, options: { json: boolean }): Promise<void> {
  const redis = await connectRedis(settings);
  try {
    const store = new PositionStore(redis, settings.prefix, settings.ingestId);
    const content = await store.inspect();
    process.stdout.write(
      options.json
        ? `${JSON.stringify(tokenReport(content, store.keys.token), null, 2)}\n`
        : `${renderToken(content, store.keys.token).join('\n')}\n`,
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
    const content = await store.inspect();
    if (content.type === 'none') {
      process.stdout.write(`no token stored at ${key}; nothing to reset\n`);
      return;
    }
    const what = describeTokenKey(readTokenKey(content, key));
    await confirm(`Delete ${what} at ${key}? The next ingest start then begins at START_AT`, {
      yes: options.yes,
      command: 'token reset',
    });
    await store.clear();
    log.info({ key, was: content.raw ?? `a Redis ${content.type}` }, 'token deleted');
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
    const content = await store.inspect();
    const replacing =
      content.type === 'none'
        ? ''
        : ` (replacing ${describeTokenKey(readTokenKey(content, keys.token))})`;
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
    log.info(
      { key: keys.token, startAt: at.toISOString(), replaced: content.raw ?? content.type },
      'start time stored',
    );
    process.stdout.write(
      `stored the start time ${at.toISOString()} at ${keys.token}${replacing}; the next ingest start streams every change from then on${replay}\n`,
    );
  } finally {
    redis.disconnect();
  }
}
