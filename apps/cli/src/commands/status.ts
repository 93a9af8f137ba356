import type { Redis } from 'ioredis';
import { losingNames, redactUri, tokenData } from '@changeq/shared';
import {
  IngestMembers,
  PositionStore,
  RingStore,
  readPause,
  deadLetterQueueName,
  describeStart,
  eventQueueName,
  readTokenKey,
  queueJobCounts,
  readWorkerRecord,
  summarizeSnapshotProgress,
  type JobCounts,
} from '@changeq/store';
import { connectRedis, ingestConnections, type IngestConnection } from '../connect.js';
import { describePause, pauseStatus, type PauseStatus } from './pause.js';
import { clusterTimeDate, clusterTimeJson, duration, table } from '../format.js';
import type { Settings } from '../settings.js';

/** `changeq status --json`, version 1 (see docs/operations.md). */
export interface StatusReport {
  version: 1;
  at: string;
  redis: string;
  prefix: string;
  ingestId: string;
  ingest: {
    /** null when Redis does not allow CLIENT LIST. */
    running: boolean | null;
    connections: IngestConnection[];
    /**
     * The ingest processes of this INGEST_ID (each writes its entry every few seconds): the one
     * that holds the lease and streams, and the standbys that take over when its lease ends.
     */
    leader: IngestProcess | null;
    standbys: IngestProcess[];
    /** `changeq pause --ingest` and what the ingest reports about it. */
    pause: PauseStatus;
  };
  position:
    | null
    | {
        kind: 'token';
        token: string | null;
        clusterTime: { t: number; i: number } | null;
        time: string | null;
        wallTime: string | null;
        savedAt: string;
        lagSeconds: number | null;
      }
    | {
        kind: 'startAt';
        clusterTime: { t: number; i: number };
        time: string;
        savedAt: string;
        reason: string;
      }
    | {
        /** Redis lost the ingest's position; the ingest refuses to start until an operator chooses. */
        kind: 'lost';
        had: string;
        found: string | null;
        detectedAt: string;
      }
    | {
        /** The token key holds something the ingest cannot use (see `changeq token show`). */
        kind: 'corrupt';
        type: string;
        problem: string;
      };
  snapshot: null | {
    done: boolean;
    copied: number;
    namespaces: string[];
    current: string | null;
    startAt: { t: number; i: number } | null;
  };
  /**
   * The ring the ingest routes by (null until an ingest stored it): its current epoch and
   * names, the epochs kept, and the handoffs not passed yet (old owner, epoch): the documents
   * that moved away from that worker at that epoch wait on their new owners until it passes;
   * `jobsAhead` bounds what it still has to finish first (its queue's unfinished jobs). How many
   * jobs wait on each new owner is its metric changeq_worker_held_tasks.
   */
  ring: null | {
    epoch: number;
    names: string[];
    since: string;
    epochs: { epoch: number; names: string[]; from: string; at: string }[];
    pendingHandoffs: { worker: string; epoch: number; jobsAhead: number }[];
  };
  workers: {
    name: string;
    /**
     * `active`: in the ring; `draining`: out of the ring, with jobs or a handoff still pending;
     * `drained`: out of the ring and done: safe to stop its process. (null: no ring stored.)
     */
    membership: 'active' | 'draining' | 'drained' | null;
    queue: string;
    counts: JobCounts;
    deadLetterQueue: string;
    deadLetters: number;
    blockedDocuments: number;
    pendingCommands: number;
    /** `changeq pause --worker` and what its process reports about it. */
    pause: PauseStatus;
    process: null | {
      pid: number;
      host: string;
      since: string;
      owner: string;
      fence: number;
      leaseExpiresInMs: number;
    };
  }[];
  workersWithoutProcess: string[];
}

/** An ingest process as `changeq status` shows it. */
export interface IngestProcess {
  pid: number;
  host: string;
  since: string;
  /** The leader's fencing number (null for a standby). */
  fence: number | null;
  /** How long ago it last wrote its entry. */
  seenSecondsAgo: number;
}

function parseSnapshot(raw: string | null): StatusReport['snapshot'] {
  if (raw === null) return null;
  const copy = summarizeSnapshotProgress(raw);
  if (copy === null)
    return { done: false, copied: 0, namespaces: [], current: null, startAt: null };
  return {
    done: copy.done,
    copied: copy.copied,
    namespaces: copy.namespaces,
    current: copy.current,
    startAt: copy.startAt ? clusterTimeJson(copy.startAt) : null,
  };
}

export async function collectStatus(redis: Redis, settings: Settings): Promise<StatusReport> {
  const prefix = settings.prefix;
  const ingestId = settings.ingestId;
  const store = new PositionStore(redis, prefix, ingestId);
  const now = Date.now();

  let running: boolean | null = null;
  let connections: IngestConnection[] = [];
  try {
    connections = await ingestConnections(redis, ingestId);
    running = connections.length > 0;
  } catch {
    running = null;
  }

  const members = await new IngestMembers(redis, prefix, ingestId).list(now).catch(() => []);
  const shown = (m: (typeof members)[number]): IngestProcess => ({
    pid: m.pid,
    host: m.host,
    since: m.startedAt,
    fence: m.fence,
    seenSecondsAgo: Math.max(0, (now - m.seenAt) / 1000),
  });
  const leaderEntry = members.find((m) => m.role === 'leader') ?? null;

  const [content, rawSnapshot] = await Promise.all([store.inspect(), store.rawSnapshot()]);
  const stored = readTokenKey(content, store.keys.token);
  let position: StatusReport['position'] = null;
  if (stored.kind === 'position') {
    const p = stored.position;
    const time = p.clusterTime ? clusterTimeDate(p.clusterTime) : p.wallTime;
    position = {
      kind: 'token',
      token: tokenData(p.token),
      clusterTime: p.clusterTime ? clusterTimeJson(p.clusterTime) : null,
      time: time ? time.toISOString() : null,
      wallTime: p.wallTime ? p.wallTime.toISOString() : null,
      savedAt: p.savedAt.toISOString(),
      lagSeconds: time ? Math.max(0, (now - time.getTime()) / 1000) : null,
    };
  } else if (stored.kind === 'marker') {
    const m = stored.marker;
    position = {
      kind: 'startAt',
      clusterTime: clusterTimeJson(m.startAt),
      time: clusterTimeDate(m.startAt).toISOString(),
      savedAt: m.savedAt.toISOString(),
      reason: m.reason,
    };
  } else if (stored.kind === 'lost') {
    const { had, found, detectedAt } = stored.record;
    position = {
      kind: 'lost',
      had: describeStart(had),
      found: found && describeStart(found),
      detectedAt: detectedAt.toISOString(),
    };
  } else if (stored.kind === 'corrupt') {
    position = { kind: 'corrupt', type: stored.type, problem: stored.problem };
  }

  const epochs = await new RingStore(redis, prefix).load().catch(() => null);
  const current = epochs?.[epochs.length - 1] ?? null;
  // Every name of the file and of the kept epochs: a removed name stays listed while it drains.
  const names = [
    ...new Set([
      ...(current?.names ?? []),
      ...settings.workers.names,
      ...(epochs ?? []).flatMap((e) => e.names),
    ]),
  ];
  const handoffs = (epochs ?? []).flatMap((epoch, i) => {
    const previous = epochs?.[i - 1];
    return previous
      ? losingNames(previous.names, epoch.names).map((worker) => ({ worker, epoch: epoch.epoch }))
      : [];
  });
  const passed = await new RingStore(redis, prefix).handoffsDone(handoffs);
  const pending = handoffs.filter((_, i) => passed[i] !== true);

  const workers = await Promise.all(
    names.map(async (name) => {
      const [queueCounts, deadCounts, record, paused] = await Promise.all([
        queueJobCounts(redis, prefix, eventQueueName(name)),
        queueJobCounts(redis, prefix, deadLetterQueueName(name)),
        readWorkerRecord(redis, prefix, name),
        readPause(redis, prefix, { kind: 'worker', name }),
      ]);
      const holder = record.holder;
      const unfinished =
        (queueCounts.waiting ?? 0) +
        (queueCounts.active ?? 0) +
        (queueCounts.delayed ?? 0) +
        (queueCounts.prioritized ?? 0);
      const membership: StatusReport['workers'][number]['membership'] =
        current === null
          ? null
          : current.names.includes(name)
            ? 'active'
            : unfinished > 0 || pending.some((h) => h.worker === name)
              ? 'draining'
              : 'drained';
      return {
        name,
        membership,
        unfinished,
        queue: eventQueueName(name),
        counts: queueCounts,
        deadLetterQueue: deadLetterQueueName(name),
        deadLetters:
          (deadCounts.waiting ?? 0) + (deadCounts.delayed ?? 0) + (deadCounts.prioritized ?? 0),
        blockedDocuments: record.blockedDocuments,
        pendingCommands: record.pendingCommands,
        pause: pauseStatus(paused.request, paused.report),
        process: holder
          ? {
              pid: holder.pid,
              host: holder.host,
              since: holder.startedAt,
              owner: holder.owner,
              fence: holder.fence,
              leaseExpiresInMs: record.leaseTtlMs,
            }
          : null,
      };
    }),
  );

  return {
    version: 1,
    at: new Date(now).toISOString(),
    redis: redactUri(settings.redisUrl),
    prefix,
    ingestId,
    ingest: {
      running,
      connections,
      leader: leaderEntry && shown(leaderEntry),
      // A deposed leader's entry says "leader" until it writes again: it counts as a standby.
      standbys: members.filter((m) => m !== leaderEntry).map(shown),
      pause: await readPause(redis, prefix, { kind: 'ingest', id: ingestId }).then((p) =>
        pauseStatus(p.request, p.report),
      ),
    },
    position,
    snapshot: parseSnapshot(rawSnapshot),
    ring:
      current === null
        ? null
        : {
            epoch: current.epoch,
            names: [...current.names],
            since: current.at,
            epochs: (epochs ?? []).map((e) => ({ ...e, names: [...e.names] })),
            pendingHandoffs: pending.map((h) => ({
              ...h,
              jobsAhead: workers.find((w) => w.name === h.worker)?.unfinished ?? 0,
            })),
          },
    workers: workers.map(({ unfinished: _, ...w }) => w),
    workersWithoutProcess: workers.filter((w) => w.process === null).map((w) => w.name),
  };
}

export function renderStatus(report: StatusReport): string {
  const lines: string[] = [];
  const ingest = report.ingest;
  lines.push(
    `ingest "${report.ingestId}" (prefix ${report.prefix}, ${report.redis}): ${
      ingest.running === null
        ? 'unknown (Redis refused CLIENT LIST)'
        : ingest.running
          ? `running (connected ${duration(Math.max(...ingest.connections.map((c) => c.ageSeconds)))} from ${ingest.connections.map((c) => c.addr).join(', ')})`
          : 'NOT RUNNING'
    }${describePause(ingest.pause)}`,
  );
  if (ingest.leader) {
    const l = ingest.leader;
    lines.push(`  leader: pid ${l.pid} on ${l.host} (fence ${l.fence}), since ${l.since}`);
  }
  for (const s of ingest.standbys) {
    lines.push(
      `  standby: pid ${s.pid} on ${s.host}, since ${s.since}: takes over when the leader's lease ends`,
    );
  }
  const p = report.position;
  if (p === null) {
    lines.push('position: no token stored (the next ingest start begins at START_AT)');
  } else if (p.kind === 'token') {
    const ago = (Date.parse(report.at) - Date.parse(p.savedAt)) / 1000;
    lines.push(
      `position: ${p.time ?? 'unknown time'}${p.clusterTime ? ` (cluster time ${p.clusterTime.t}.${p.clusterTime.i})` : ''}, lag ${p.lagSeconds === null ? '?' : duration(p.lagSeconds)}, stored ${duration(ago)} ago`,
    );
    if (p.token) lines.push(`          token ${p.token}`);
  } else if (p.kind === 'startAt') {
    lines.push(
      `position: start time ${p.time} (cluster time ${p.clusterTime.t}.${p.clusterTime.i}), set ${p.savedAt}${p.reason ? ` by ${p.reason}` : ''}: the next ingest start streams from it`,
    );
  } else if (p.kind === 'lost') {
    lines.push(
      `position: LOST (found ${p.detectedAt}): it was ${p.had}, Redis held ${p.found ?? 'nothing'}; the ingest refuses to start until an operator chooses (see changeq token show)`,
    );
  } else {
    lines.push(`position: CORRUPT: ${p.problem} (see changeq token show)`);
  }
  const s = report.snapshot;
  if (s) {
    lines.push(
      s.done
        ? `snapshot: copy complete (${s.copied} documents); the stream continues from its start`
        : `snapshot: copy in progress or interrupted: ${s.copied} documents copied, at ${s.current ?? '?'} (${s.namespaces.length} collections)`,
    );
  }
  lines.push('');
  lines.push(
    table(
      ['queue', 'waiting', 'active', 'delayed', 'failed', 'completed', 'dead letters', 'blocked'],
      report.workers.map((w) => [
        w.queue,
        w.counts.waiting + w.counts.prioritized,
        w.counts.active,
        w.counts.delayed,
        w.counts.failed,
        w.counts.completed,
        w.deadLetters,
        w.blockedDocuments,
      ]),
    ),
  );
  const ring = report.ring;
  if (ring) {
    lines.push(`ring: epoch ${ring.epoch} since ${ring.since}: ${ring.names.join(', ')}`);
    for (const h of ring.pendingHandoffs) {
      lines.push(
        `  handoff pending: ${h.worker} (epoch ${h.epoch}) has ${h.jobsAhead} unfinished jobs; documents that moved away from it wait on their new owners until they are done`,
      );
    }
  } else {
    lines.push('ring: none stored yet (the first ingest start stores workers.toml as epoch 1)');
  }
  lines.push('');
  lines.push('workers:');
  const width = Math.max(...report.workers.map((w) => w.name.length));
  for (const w of report.workers) {
    const pending = w.pendingCommands > 0 ? `; ${w.pendingCommands} operator commands queued` : '';
    const state =
      w.membership === 'draining'
        ? ' [draining: left the ring, jobs still pending]'
        : w.membership === 'drained'
          ? ' [drained: left the ring, nothing pending: safe to stop]'
          : '';
    lines.push(
      (w.process
        ? `  ${w.name.padEnd(width)}  pid ${w.process.pid} on ${w.process.host}, active since ${w.process.since} (fence ${w.process.fence}, lease renewed, expires in ${duration(w.process.leaseExpiresInMs / 1000)})${pending}`
        : `  ${w.name.padEnd(width)}  ${w.membership === 'drained' ? 'no process' : 'NO LIVE PROCESS (no lease): its jobs wait'}${pending}`) +
        state +
        describePause(w.pause),
    );
  }
  return lines.join('\n');
}

export async function statusCommand(settings: Settings, options: { json: boolean }) {
  const redis = await connectRedis(settings);
  try {
    const report = await collectStatus(redis, settings);
    process.stdout.write(
      options.json ? `${JSON.stringify(report, null, 2)}\n` : `${renderStatus(report)}\n`,
    );
  } finally {
    redis.disconnect();
  }
}
