/** How long and how hard each row runs: `--quick` (a few minutes) or the full matrix. */
export interface Settings {
  mode: 'quick' | 'full';
  /** Changes per second the writer aims at (inserts, updates, replaces, deletes, transactions). */
  writeRate: number;
  /** Documents the writer spreads its changes over. */
  documents: number;
  /** Writing before the first fault, and after the last one. */
  warmupMs: number;
  tailMs: number;
  /** How many times the repeated faults strike in one row. */
  repeats: {
    ingestKills: number;
    workerKills: number;
    ingestPauses: number;
    workerPauses: number;
    /** Standby ingests: SIGKILLs of the leading ingest, and pauses of it past its lease. */
    leaderKills: number;
    leaderPauses: number;
    redisShortOutages: number;
    redisLongOutages: number;
    redisPauses: number;
    mongoRestarts: number;
    droppedConnections: number;
    resumableErrors: number;
    stepDowns: number;
    namespaceChanges: number;
  };
  /** Redis down before its restart: the short and the long outage of the issue. */
  redisShortOutageMs: number;
  redisLongOutageMs: number;
  /** How long a SIGSTOP lasts (Redis; the ingest); a worker's lasts 2 leases and a second. */
  pauseMs: number;
  stepDownSeconds: number;
  /** How long the pipeline may take to handle every change once the writes end. */
  drainTimeoutMs: number;
  /** How long the ingest gets to stop by itself after Redis came back empty. */
  stopTimeoutMs: number;
}

/** The workers' lease: a crashed or paused worker's successor waits this long. */
export const LEASE_TTL_MS = 3000;
/** The worker names (several, so routing spreads documents and barriers reach each). */
export const WORKER_NAMES = ['alpha', 'bravo', 'charlie'] as const;
/** The collections the writer writes (several, so namespace events hit some documents only). */
export const COLLECTIONS = ['a', 'b', 'c'] as const;

export const QUICK: Settings = {
  mode: 'quick',
  writeRate: 150,
  documents: 300,
  warmupMs: 800,
  tailMs: 800,
  repeats: {
    ingestKills: 3,
    workerKills: 2,
    ingestPauses: 1,
    workerPauses: 1,
    leaderKills: 5,
    // Each of the two ingests is paused once: the second pause strikes the one that took over.
    leaderPauses: 2,
    redisShortOutages: 1,
    redisLongOutages: 1,
    redisPauses: 1,
    mongoRestarts: 1,
    droppedConnections: 2,
    resumableErrors: 2,
    stepDowns: 1,
    namespaceChanges: 1,
  },
  redisShortOutageMs: 1000,
  redisLongOutageMs: 10_000,
  pauseMs: 3000,
  stepDownSeconds: 2,
  drainTimeoutMs: 45_000,
  stopTimeoutMs: 8_000,
};

export const FULL: Settings = {
  mode: 'full',
  writeRate: 300,
  documents: 2000,
  warmupMs: 5000,
  tailMs: 5000,
  repeats: {
    ingestKills: 12,
    workerKills: 8,
    ingestPauses: 2,
    workerPauses: 4,
    leaderKills: 8,
    leaderPauses: 2,
    redisShortOutages: 3,
    redisLongOutages: 2,
    redisPauses: 2,
    mongoRestarts: 3,
    droppedConnections: 10,
    resumableErrors: 10,
    stepDowns: 2,
    namespaceChanges: 3,
  },
  redisShortOutageMs: 1000,
  redisLongOutageMs: 10_000,
  pauseMs: 8000,
  stepDownSeconds: 5,
  drainTimeoutMs: 120_000,
  stopTimeoutMs: 30_000,
};
