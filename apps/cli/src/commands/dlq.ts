import { UserError, type Logger } from '@changeq/shared';
import {
  deadLetterQueueName,
  discardDeadLetter,
  listDeadLetters,
  readWorkerRecord,
  retryDeadLetter,
  type CommandReceipt,
  type DeadLetterEntry,
  type Selection,
} from '@changeq/store';
import { confirm } from '../confirm.js';
import { connectRedis } from '../connect.js';
import { table } from '../format.js';
import type { Settings } from '../settings.js';

export interface SelectionFlags {
  job?: string;
  all?: boolean;
}

export function selection(flags: SelectionFlags, command: string): Selection {
  if (flags.job !== undefined && flags.all) {
    throw new UserError(`${command}: --job and --all exclude each other`, 'pass one of them');
  }
  if (flags.job !== undefined) return { jobId: flags.job };
  if (flags.all) return { all: true };
  throw new UserError(
    `${command} needs --job <id> or --all`,
    `list the dead letters with \`changeq dlq list --worker <name>\`, then pass --job <id> (or --all)`,
  );
}

const oneLine = (text: string | undefined, max = 80) => {
  const line = (text ?? '').split('\n')[0] ?? '';
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
};

export function renderDeadLetters(worker: string, entries: DeadLetterEntry[]): string {
  if (entries.length === 0) return `no dead letters in ${deadLetterQueueName(worker)}`;
  const dead = entries.filter((e) => e.kind === 'dead').length;
  const rows = entries.map((e) => [
    e.jobId,
    e.kind +
      (e.replay ? ` (${e.replay} running)` : '') +
      (e.pending.length ? ` (${e.pending.join(', ')} queued)` : ''),
    e.name,
    e.kind === 'dead'
      ? `${e.info.attempts ?? '?'} attempts, ${e.info.failedAt ?? '?'}: ${oneLine(e.info.error?.message)}`
      : `behind ${e.info.blockedBy ?? '?'}${e.info.seq !== undefined ? ` (#${e.info.seq})` : ''}`,
  ]);
  return [
    `${deadLetterQueueName(worker)}: ${dead} dead letters, ${entries.length - dead} parked events`,
    table(['job', 'kind', 'event', 'details'], rows),
  ].join('\n');
}

export async function dlqList(
  settings: Settings,
  options: { worker: string; job?: string; json: boolean },
): Promise<void> {
  const worker = settings.worker(options.worker);
  const redis = await connectRedis(settings);
  try {
    const target = { redis, worker, prefix: settings.prefix };
    const entries = await listDeadLetters(
      target,
      options.job !== undefined ? { jobId: options.job } : { all: true },
    );
    if (options.job !== undefined && entries.length === 0) {
      throw new UserError(
        `no dead letter ${options.job} in ${deadLetterQueueName(worker)}`,
        `run \`changeq dlq list --worker ${worker}\` to see the job ids`,
      );
    }
    process.stdout.write(
      options.json
        ? `${JSON.stringify(entries, null, 2)}\n`
        : `${renderDeadLetters(worker, entries)}\n`,
    );
  } finally {
    redis.disconnect();
  }
}

/** Library refusals (unknown job, parked job) are the operator's input: one clear line. */
function asUserError(error: unknown, worker: string): never {
  const message = (error as Error).message ?? String(error);
  if (/^no dead letter /.test(message)) {
    throw new UserError(message, `run \`changeq dlq list --worker ${worker}\` to see the job ids`);
  }
  if (/is parked behind dead letter/.test(message)) {
    const [problem, fix] = message.split(': ');
    throw new UserError(
      problem ?? message,
      fix ?? 'retry or discard the dead letter it waits behind',
    );
  }
  throw error;
}

export async function dlqAct(
  settings: Settings,
  op: 'retry' | 'discard',
  options: { worker: string; yes: boolean } & SelectionFlags,
  log: Logger,
): Promise<void> {
  const worker = settings.worker(options.worker);
  const chosen = selection(options, `dlq ${op}`);
  const redis = await connectRedis(settings);
  try {
    const target = { redis, worker, prefix: settings.prefix };
    if (op === 'discard') {
      const entries = await listDeadLetters(target, chosen).catch((e) => asUserError(e, worker));
      if ('jobId' in chosen && entries.length === 0) {
        asUserError(
          new Error(`no dead letter ${chosen.jobId} in queue ${deadLetterQueueName(worker)}`),
          worker,
        );
      }
      const count = 'jobId' in chosen ? 1 : entries.filter((e) => e.kind === 'dead').length;
      if (count > 0) {
        await confirm(
          `Discard ${'jobId' in chosen ? `job ${chosen.jobId}` : `all ${count} dead letters`} of ${worker} without running ${count === 1 ? 'it' : 'them'}?`,
          { yes: options.yes, command: `dlq discard` },
        );
      }
    }
    const receipts: CommandReceipt[] = await (op === 'retry' ? retryDeadLetter : discardDeadLetter)(
      target,
      chosen,
    ).catch((e) => asUserError(e, worker));
    log.info({ worker, op, jobs: receipts.map((r) => r.jobId) }, `dead-letter ${op} queued`);
    const lease = (await readWorkerRecord(redis, settings.prefix, worker)).holder;
    const who = lease
      ? `the active ${worker} process (pid ${lease.pid} on ${lease.host}) carries ${receipts.length === 1 ? 'it' : 'them'} out within about a second`
      : `no ${worker} process is running: ${receipts.length === 1 ? 'it waits' : 'they wait'} until one starts`;
    process.stdout.write(
      receipts.length === 0
        ? `no dead letters of ${worker} to ${op}\n`
        : `queued ${op} of ${receipts.length} dead letter${receipts.length === 1 ? '' : 's'} (${receipts.map((r) => r.jobId).join(', ')}); ${who}\n`,
    );
  } finally {
    redis.disconnect();
  }
}
