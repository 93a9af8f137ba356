/**
 * Dead letters, the operator API: list them, and ask the active worker to retry or discard them.
 *
 * An event whose handler failed `attempts` times is added to the BullMQ queue `<worker>.dead`
 * under its original job id, with `deadLetter.kind = 'dead'`. With `dead_letter = "block"` its
 * document is recorded in the hash `workerKeys().blocked` and the document's later events are
 * parked: added to the same queue with `kind = 'parked'` and a sequence number (also kept, in
 * order, in a sorted set per document), and finished in the event queue.
 *
 * Nothing consumes `<worker>.dead` directly. An operator (`changeq dlq`, or code) calls
 * `retryDeadLetter` / `discardDeadLetter`, which only append a command to the list
 * `workerKeys().commands`; the active worker process carries the commands out in order (see
 * docs/handlers.md), so a retry issued from another process cannot run concurrently with, or out
 * of order against, the events the worker is running.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { parseBlockState, type BlockState } from './codecs/block-state.js';
import {
  decodeCommand,
  encodeCommand,
  type DeadLetterInfo,
  type DeadLetterJobData,
} from './codecs/dead-letter.js';
import { DEFAULT_PREFIX, deadLetterQueueName, workerKeys } from './keys.js';

export interface DeadLetterTarget {
  /** An ioredis connection to the Redis of the worker. */
  redis: Redis;
  worker: string;
  /** Default `changeq`. */
  prefix?: string;
}

export interface DeadLetterEntry {
  jobId: string;
  name: string;
  kind: 'dead' | 'parked';
  ns: string;
  op: string;
  doc: string | null;
  /** The document is blocked (dead_letter = "block"): by this dead letter, or the one it waits behind. */
  blocking: boolean;
  /** 'retry' or 'discard' while the worker is re-running the document's line. */
  replay?: 'retry' | 'discard';
  info: DeadLetterInfo;
  /** Attempts of the re-run in progress, if any (from the job's progress). */
  progress?: unknown;
  /** Commands queued for this job that the worker has not carried out yet. */
  pending: ('retry' | 'discard')[];
}

export type Selection = { jobId: string } | { all: true };

function keysOf(target: DeadLetterTarget) {
  return workerKeys(target.prefix ?? DEFAULT_PREFIX, target.worker);
}

async function withQueue<R>(target: DeadLetterTarget, fn: (queue: Queue) => Promise<R>) {
  const queue = new Queue(deadLetterQueueName(target.worker), {
    connection: target.redis,
    prefix: target.prefix ?? DEFAULT_PREFIX,
  });
  try {
    return await fn(queue);
  } finally {
    await queue.close();
  }
}

/** Dead letters and parked events of a worker, dead letters first, parked ones in line order. */
export async function listDeadLetters(
  target: DeadLetterTarget,
  selection: Selection = { all: true },
): Promise<DeadLetterEntry[]> {
  const keys = keysOf(target);
  const [blockedRaw, commandsRaw] = await Promise.all([
    target.redis.hgetall(keys.blocked),
    target.redis.lrange(keys.commands, 0, -1),
  ]);
  const pending = new Map<string, ('retry' | 'discard')[]>();
  for (const raw of commandsRaw) {
    const command = decodeCommand(raw);
    if (command) pending.set(command.jobId, [...(pending.get(command.jobId) ?? []), command.op]);
  }
  const blocked = new Map<string, BlockState>();
  for (const [doc, raw] of Object.entries(blockedRaw)) {
    const state = parseBlockState(raw);
    if (state) blocked.set(doc, state);
  }
  return withQueue(target, async (queue) => {
    const jobs =
      'jobId' in selection
        ? [await queue.getJob(selection.jobId)].filter((job) => job !== undefined)
        : await queue.getJobs(['waiting', 'delayed', 'prioritized']);
    const entries: DeadLetterEntry[] = [];
    for (const job of jobs) {
      if (job.id === undefined) continue;
      const data = job.data as DeadLetterJobData;
      if (data?.deadLetter === undefined) continue;
      const block = data.doc === null ? undefined : blocked.get(data.doc);
      // A parked event waits behind whatever blocks its document now (the job data keeps the
      // dead letter it was parked behind, which a failed retry may have replaced).
      const info =
        data.deadLetter.kind === 'parked' && block !== undefined
          ? { ...data.deadLetter, blockedBy: block.dead }
          : data.deadLetter;
      const entry: DeadLetterEntry = {
        jobId: job.id,
        name: job.name,
        kind: data.deadLetter.kind,
        ns: data.ns,
        op: data.op,
        doc: data.doc,
        blocking: block !== undefined,
        info,
        pending: pending.get(job.id) ?? [],
      };
      if (block !== undefined && block.state !== 'blocked') entry.replay = block.state;
      if (job.progress !== 0 && job.progress !== undefined) entry.progress = job.progress;
      entries.push(entry);
    }
    entries.sort((a, b) => {
      if (a.kind !== b.kind) return a.kind === 'dead' ? -1 : 1;
      return (a.info.seq ?? 0) - (b.info.seq ?? 0);
    });
    return entries;
  });
}

export interface CommandReceipt {
  jobId: string;
  op: 'retry' | 'discard';
  doc: string | null;
}

async function queueCommands(
  target: DeadLetterTarget,
  op: 'retry' | 'discard',
  selection: Selection,
): Promise<CommandReceipt[]> {
  const entries = await listDeadLetters(target, selection);
  if ('jobId' in selection && entries.length === 0) {
    throw new Error(
      `no dead letter ${selection.jobId} in queue ${deadLetterQueueName(target.worker)}`,
    );
  }
  const chosen = entries.filter((entry) => {
    if (entry.kind === 'dead') return true;
    // A parked event runs when the dead letter it waits behind is retried or discarded.
    if (op === 'retry' || !('jobId' in selection)) return false;
    return true;
  });
  if ('jobId' in selection && chosen.length === 0) {
    const blockedBy = entries[0]?.info.blockedBy;
    throw new Error(
      `job ${selection.jobId} is parked behind dead letter ${blockedBy ?? '(unknown)'}: retry or discard that one, and the parked events run after it in order`,
    );
  }
  const at = new Date().toISOString();
  const commands = chosen.map((entry) => encodeCommand({ op, jobId: entry.jobId, at }));
  if (commands.length > 0) await target.redis.rpush(keysOf(target).commands, ...commands);
  return chosen.map((entry) => ({ jobId: entry.jobId, op, doc: entry.doc }));
}

/**
 * Asks the worker to run a dead letter again (or every dead letter). With dead_letter = "block"
 * the worker then runs the document's parked events after it, in order, and unblocks the
 * document. Returns what was queued; the worker carries it out when it is (or next becomes) active.
 */
export function retryDeadLetter(
  target: DeadLetterTarget,
  selection: Selection,
): Promise<CommandReceipt[]> {
  return queueCommands(target, 'retry', selection);
}

/**
 * Asks the worker to drop a dead letter (or every dead letter) without running it. A blocked
 * document's parked events then run in order. A parked event can be discarded by its id too.
 */
export function discardDeadLetter(
  target: DeadLetterTarget,
  selection: Selection,
): Promise<CommandReceipt[]> {
  return queueCommands(target, 'discard', selection);
}
