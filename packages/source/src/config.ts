import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Document } from 'mongodb';
import {
  UserError,
  envReader,
  loadWorkersConfig,
  parseDateTime,
  type WorkersConfig,
} from '@changeq/shared';
import { readExtendedJson } from './extended-json-setting.js';
import { checkRoutingSettings } from './routing-settings.js';
import { parsePipeline, refuseSnapshotWithReshaping } from './user-pipeline.js';
import { parseExclude, parseWatch, type WatchScope } from './watch-scope.js';

export type FullDocumentMode = 'default' | 'updateLookup' | 'whenAvailable' | 'required';
export type BeforeChangeMode = 'off' | 'whenAvailable' | 'required';

/** Where to begin when Redis holds no resume token yet. */
export type StartAt = { kind: 'now' } | { kind: 'time'; at: Date } | { kind: 'snapshot' };

export interface IngestConfig {
  mongodbUri: string;
  redisUrl: string;
  workers: WorkersConfig;
  watch: WatchScope;
  startAt: StartAt;
  fullDocument: FullDocumentMode;
  fullDocumentBeforeChange: BeforeChangeMode;
  /**
   * Open the stream with `showExpandedEvents` (MongoDB 6.0+): DDL events such as `create`,
   * `createIndexes`, `dropIndexes` and `modify` reach the handlers, as namespace-wide events.
   */
  expandedEvents: boolean;
  /**
   * End the pipeline with `$changeStreamSplitLargeEvent` (MongoDB 7.0, 6.0.9+): events over
   * 16 MB arrive as fragments, which the ingest joins into one job.
   */
  splitLargeEvents: boolean;
  /** An extra `$match` stage (Extended JSON) applied on the server. */
  match: Document | null;
  /** Stages added after the scope and MATCH (PIPELINE; checked by user-pipeline.ts). */
  pipeline: Document[] | null;
  /** Most events per change-stream batch and per commit to Redis. */
  batchSize: number;
  /** How long one getMore waits for new events before returning an empty batch. */
  maxAwaitTimeMs: number;
  queuePrefix: string;
  /** Names this ingest's keys in Redis, so several ingests can share one Redis. */
  ingestId: string;
  /** Stop reading while a target queue holds more waiting jobs than this. */
  backlogLimit: number;
  /** On a lost resume point, continue from now and log the skipped window instead of stopping. */
  acceptGap: boolean;
  /** How long and how many finished jobs BullMQ keeps (Bull Board shows them). */
  keepCompleted: { age: number; count: number };
  keepFailed: { age: number; count: number };
  /** Give up starting when MongoDB or Redis cannot be reached for this long. */
  connectTimeoutMs: number;
  shutdownTimeoutMs: number;
  /** Port of /metrics, /healthz and /readyz; 0 = off. */
  httpPort: number;
  /**
   * The ingest lease's time to live (INGEST_LEASE_TTL_MS): of the ingests with one INGEST_ID,
   * the lease holder streams; a standby takes over at most this long after the leader died.
   */
  leaseTtlMs: number;
}

export const USAGE = `Usage: changeq-ingest [--accept-gap] [--help]

Tails a MongoDB change stream and puts every event on its worker's BullMQ queue.
Settings come from the environment (see docs/configuration.md):

  MONGODB_URI (required)   REDIS_URL (required)   WORKERS_FILE (./workers.toml)
  WATCH ('' = deployment | db | db.coll,db.*,*.coll,/regex/)   START_AT (now | ISO date-time | snapshot)
  FULL_DOCUMENT (default)   FULL_DOCUMENT_BEFORE_CHANGE (off)   MATCH ({} as Extended JSON)
  PIPELINE ([] as Extended JSON: $match, $project, $set, $unset, $replaceWith, $redact stages)
  EXPANDED_EVENTS (false; true = DDL events too: create, createIndexes, modify, ...)
  SPLIT_LARGE_EVENTS (true: events over 16 MB arrive split and are joined; needs MongoDB 7.0/6.0.9+)
  BATCH_SIZE (1000)   MAX_AWAIT_TIME_MS (1000)   QUEUE_PREFIX (changeq)   INGEST_ID (default)
  BACKLOG_LIMIT (100000)   KEEP_COMPLETED_SECONDS (3600)   KEEP_COMPLETED_COUNT (10000)
  KEEP_FAILED_SECONDS (604800)   CONNECT_TIMEOUT_MS (30000)   SHUTDOWN_TIMEOUT_MS (4000)
  HTTP_PORT (0 = off; /metrics, /healthz, /readyz)   HTTP_HOST (127.0.0.1)
  INGEST_LEASE_TTL_MS (10000; standby ingests of the same INGEST_ID take over within it)
  EXCLUDE_DBS (extra databases a deployment-wide stream skips)
  EXCLUDE (namespaces and patterns to leave out: db.coll, db.*, *.coll, /regex/)
  REDIS_TLS_CA, REDIS_TLS_CERT, REDIS_TLS_KEY (PEM files, for rediss://)

Options:
  --accept-gap   if the stored resume point has left the oplog, continue from now and log the
                 skipped window instead of stopping (the default is to stop: nothing is skipped
                 silently)
  --help         show this help`;

function parseStartAt(raw: string): StartAt {
  const value = raw.trim();
  if (value === '' || value === 'now') return { kind: 'now' };
  if (value === 'snapshot') return { kind: 'snapshot' };
  const at = parseDateTime(
    raw,
    'START_AT',
    (example) => `set START_AT=now, START_AT=snapshot, or a time such as START_AT=${example}`,
  );
  return { kind: 'time', at };
}

function parseMatch(raw: string | undefined): Document | null {
  const parsed = readExtendedJson(
    'MATCH',
    raw,
    `give a $match filter as JSON, e.g. MATCH='{"operationType": {"$in": ["insert", "update"]}}'`,
  );
  if (parsed === undefined) return null;
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new UserError(
      'MATCH must be a JSON object (a $match filter)',
      `e.g. MATCH='{"ns.coll": "orders"}'`,
    );
  }
  return parsed as Document;
}

export function parseFlags(argv: string[]): { acceptGap: boolean; help: boolean } {
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        'accept-gap': { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      allowPositionals: false,
    });
    return { acceptGap: values['accept-gap'], help: values.help };
  } catch (error) {
    throw new UserError((error as Error).message, 'run with --help to see the options');
  }
}

/**
 * `mongoDriver: false`: MONGODB_URI without the driver's own parse, for a caller that does not
 * load the driver (the ingest's main thread: its reader thread makes that check, see
 * mongoUriRefusal).
 */
export function loadConfig(
  env: NodeJS.ProcessEnv,
  flags: { acceptGap: boolean },
  { mongoDriver = true }: { mongoDriver?: boolean } = {},
): IngestConfig {
  const read = envReader(env);
  const mongodbUri = read.mongoUri('MONGODB_URI', { driver: mongoDriver });
  const redisUrl = read.redisUrl();
  const workers = loadWorkersConfig(
    resolve(read.string('WORKERS_FILE', { default: './workers.toml' })),
  );
  const excludeDbs = (read.optionalString('EXCLUDE_DBS') ?? '')
    .split(',')
    .map((db) => db.trim())
    .filter(Boolean);
  const queuePrefix = read.queuePrefix();
  const ingestId = read.string('INGEST_ID', { default: 'default' });
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(ingestId)) {
    throw new UserError(
      `INGEST_ID="${ingestId}" may only hold letters, digits, - and _`,
      'pick an id such as "main"',
    );
  }
  const startAt = parseStartAt(read.string('START_AT', { default: 'now' }));
  const pipeline = parsePipeline(read.optionalString('PIPELINE'));
  if (startAt.kind === 'snapshot') refuseSnapshotWithReshaping(pipeline, 'START_AT=snapshot');
  const fullDocument = read.oneOf(
    'FULL_DOCUMENT',
    ['default', 'updateLookup', 'whenAvailable', 'required'],
    { default: 'default' },
  );
  const fullDocumentBeforeChange = read.oneOf(
    'FULL_DOCUMENT_BEFORE_CHANGE',
    ['off', 'whenAvailable', 'required'],
    { default: 'off' },
  );
  checkRoutingSettings(workers.routing, {
    fullDocument,
    fullDocumentBeforeChange,
    pipeline,
    file: workers.file,
  });
  return {
    mongodbUri,
    redisUrl,
    workers,
    watch: parseWatch(
      read.optionalString('WATCH'),
      excludeDbs,
      parseExclude(read.optionalString('EXCLUDE')),
    ),
    startAt,
    fullDocument,
    fullDocumentBeforeChange,
    expandedEvents: read.bool('EXPANDED_EVENTS', { default: false }),
    splitLargeEvents: read.bool('SPLIT_LARGE_EVENTS', { default: true }),
    match: parseMatch(read.optionalString('MATCH')),
    pipeline,
    batchSize: read.int('BATCH_SIZE', { default: 1000, min: 1, max: 100_000 }),
    maxAwaitTimeMs: read.int('MAX_AWAIT_TIME_MS', { default: 1000, min: 10, max: 60_000 }),
    queuePrefix,
    ingestId,
    backlogLimit: read.int('BACKLOG_LIMIT', { default: 100_000, min: 1 }),
    acceptGap: flags.acceptGap || read.bool('ACCEPT_GAP', { default: false }),
    keepCompleted: {
      age: read.int('KEEP_COMPLETED_SECONDS', { default: 3600, min: 0 }),
      count: read.int('KEEP_COMPLETED_COUNT', { default: 10_000, min: 0 }),
    },
    keepFailed: {
      age: read.int('KEEP_FAILED_SECONDS', { default: 7 * 24 * 3600, min: 0 }),
      count: read.int('KEEP_FAILED_COUNT', { default: 100_000, min: 0 }),
    },
    connectTimeoutMs: read.int('CONNECT_TIMEOUT_MS', { default: 30_000, min: 100 }),
    shutdownTimeoutMs: read.int('SHUTDOWN_TIMEOUT_MS', { default: 4000, min: 100 }),
    httpPort: read.int('HTTP_PORT', { default: 0, min: 0, max: 65_535 }),
    leaseTtlMs: read.int('INGEST_LEASE_TTL_MS', { default: 10_000, min: 500, max: 600_000 }),
  };
}
