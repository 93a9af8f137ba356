import cliProgress from 'cli-progress';
import type { MongoClient, Timestamp } from 'mongodb';
import { Router, UserError, type Logger } from '@changeq/shared';
import {
  SnapshotReader,
  copySnapshot,
  ingestEnqueuer,
  loadConfig,
  refuseSnapshotWithReshaping,
  snapshotNamespaces,
  type IngestConfig,
} from '@changeq/source';
import {
  PositionStore,
  eventQueueName,
  RingStore,
  describeTokenKey,
  ingestKeys,
  readTokenKey,
  summarizeSnapshotProgress,
} from '@changeq/store';
import { confirm } from '../confirm.js';
import { connectMongo, connectRedis, refuseWhileIngestRuns } from '../connect.js';
import { clusterTimeDate, clusterTimeText, duration } from '../format.js';
import type { Settings } from '../settings.js';

export interface ResyncOptions {
  yes: boolean;
  ingestStopped: boolean;
  fresh: boolean;
}

/** Documents per collection, estimated from the collection's metadata (fast, no scan). */
async function estimate(mongo: MongoClient, namespaces: readonly string[]) {
  return Promise.all(
    namespaces.map(async (ns) => {
      const dot = ns.indexOf('.');
      const count = await mongo
        .db(ns.slice(0, dot))
        .collection(ns.slice(dot + 1))
        .estimatedDocumentCount()
        .catch(() => 0);
      return { ns, count };
    }),
  );
}

/**
 * Copies the watched collections into the queues with the ingest's own snapshot code, then
 * stores the copy's start time as the ingest's start marker: its next start streams every change
 * made since the copy began (a document changed during the copy arrives as its snapshot, then as
 * its changes).
 */
export async function resync(
  settings: Settings,
  options: ResyncOptions,
  log: Logger,
  io: { stderr: NodeJS.WriteStream } = process,
): Promise<void> {
  // The same settings as the ingest, validated the same way (WATCH, BATCH_SIZE, KEEP_*, ...).
  settings.servers();
  const config: IngestConfig = loadConfig(settings.env, { acceptGap: false });
  refuseSnapshotWithReshaping(config.pipeline, 'changeq resync');
  const redis = await connectRedis(settings);
  let mongo: MongoClient | undefined;
  const enqueuer = ingestEnqueuer(config, redis, log);
  try {
    mongo = await connectMongo(settings);
    await refuseWhileIngestRuns(redis, config.ingestId, 'resync', options.ingestStopped);
    const store = new PositionStore(redis, config.queuePrefix, config.ingestId);
    const keys = ingestKeys(config.queuePrefix, config.ingestId);

    const content = await store.inspect();
    if (content.type !== 'none') {
      const what = describeTokenKey(readTokenKey(content, keys.token));
      await confirm(
        `${what} is stored; resync replaces it, so the next ingest start streams from the copy's start instead. Go ahead?`,
        { yes: options.yes, command: 'resync' },
      );
    }
    if (options.fresh) await store.clearSnapshot();
    const rawCopy = await redis.get(keys.snapshot);
    const saved = rawCopy === null ? null : summarizeSnapshotProgress(rawCopy);
    if (saved && !saved.done) {
      log.info(
        { copied: saved.copied },
        'resuming an interrupted copy (--fresh starts over instead)',
      );
    }

    const namespaces = saved?.namespaces.length
      ? saved.namespaces
      : await snapshotNamespaces(mongo, config);
    const counts = await estimate(mongo, namespaces);
    const total = counts.reduce((sum, c) => sum + c.count, 0);
    process.stderr.write(
      `resync: copying ${namespaces.length} collection${namespaces.length === 1 ? '' : 's'}, about ${total} documents: ${counts
        .map((c) => `${c.ns} ~${c.count}`)
        .join(', ')}\n`,
    );

    const showBar = io.stderr.isTTY === true;
    const bar = showBar
      ? new cliProgress.SingleBar(
          {
            stream: io.stderr,
            format:
              'resync [{bar}] {percentage}% | {value}/{total} documents | {namespace} | {eta_formatted} left',
            etaBuffer: 50,
            hideCursor: true,
          },
          cliProgress.Presets.shades_classic,
        )
      : null;
    bar?.start(Math.max(total, 1), saved && !saved.done ? saved.copied : 0, {
      namespace: namespaces[0] ?? '',
    });
    let lastNamespace = '';
    const abort = new AbortController();
    const onSignal = () => abort.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    // The names the stream routes by: the stored ring's current epoch (workers.toml until an
    // ingest stored one); the ingest has stopped, so no ring change is under way.
    const ring = await new RingStore(redis, config.queuePrefix).load();
    const names = ring?.[ring.length - 1]?.names ?? config.workers.names;
    await enqueuer.ensureQueues(names.map(eventQueueName));
    const started = Date.now();
    let copied = saved?.copied ?? 0;
    let startAt: Timestamp | null;
    try {
      startAt = await copySnapshot({
        source: new SnapshotReader(mongo, config.watch, new Router(names), config.workers.routing),
        enqueuer,
        store,
        batchSize: config.batchSize,
        // With a progress bar, the copy's own info lines would tear it.
        log: showBar ? log.child({}, { level: 'warn' }) : log,
        signal: abort.signal,
        onProgress: (progress) => {
          copied = progress.copied;
          if (bar) {
            if (copied > bar.getTotal()) bar.setTotal(copied);
            bar.update(copied, { namespace: progress.namespace });
          } else if (progress.namespace !== lastNamespace) {
            lastNamespace = progress.namespace;
            process.stderr.write(
              `resync: copying ${progress.namespace} (${progress.index + 1}/${progress.total}); ${copied} documents so far\n`,
            );
          }
        },
      });
    } finally {
      bar?.stop();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    if (startAt === null) {
      process.stderr.write(
        `changeq: resync interrupted after ${copied} documents; the stored token is unchanged. Run \`changeq resync\` again to resume the copy where it stopped.\n`,
      );
      process.exitCode = 130;
      return;
    }
    // The start marker replaces the token, and the finished copy is forgotten, in one transaction.
    await store.finishResync({ startAt, savedAt: new Date(), reason: 'changeq resync' });
    process.stdout.write(
      `resync: copied ${copied} documents of ${namespaces.length} collection${namespaces.length === 1 ? '' : 's'} in ${duration((Date.now() - started) / 1000)}; the next ingest start streams every change since the copy began (${clusterTimeDate(startAt).toISOString()}, cluster time ${clusterTimeText(startAt)})\n`,
    );
  } catch (error) {
    if (error instanceof UserError) throw error;
    // A server failing mid-copy: the progress is saved per batch, a rerun resumes.
    throw new UserError(
      `resync stopped: ${(error as Error).message.split('\n')[0]}; the copy's progress is saved and the stored token is unchanged`,
      'check that MongoDB and Redis are reachable, then run `changeq resync` again to resume the copy',
    );
  } finally {
    await enqueuer.close().catch(() => undefined);
    redis.disconnect();
    await mongo?.close().catch(() => undefined);
  }
}
