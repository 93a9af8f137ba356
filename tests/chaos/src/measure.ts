/**
 * One row's figures and verdict, from what the server says happened (its change history), what
 * Redis says was enqueued (the queues' event streams) and what the handlers recorded.
 */
import type { ChangeStreamDocument, Timestamp } from 'mongodb';
import {
  checkDeliveries,
  checkTransactionMarks,
  jobKey,
  type ExpectedJob,
  type HandlerCall,
  type SupervisedExit,
  type WriteTally,
} from '@changeq/testkit';
import type { EnqueueTally } from './enqueues.js';

/** One fault, from the moment it struck until it had ended. */
export interface FaultWindow {
  label: string;
  start: number;
  end: number;
  /** The server's cluster time at the end: changes up to it were written before it. */
  endCluster: Timestamp;
}

export interface RowRun {
  id: string;
  title: string;
  expect: 'clean' | 'stop';
  truth: readonly ChangeStreamDocument[];
  expected: readonly ExpectedJob[];
  calls: readonly HandlerCall[];
  enqueues: EnqueueTally;
  windows: readonly FaultWindow[];
  writes: WriteTally;
  /** Processes of the row that exited by themselves (not by a signal), by role. */
  ownExits: readonly { role: string; exit: SupervisedExit }[];
  /** When Redis came back without its data (the empty-Redis row), Date.now(). */
  resetAt: number | null;
  /** Why the fault did not strike as planned (the row then fails). */
  failures: readonly string[];
  notes: readonly string[];
  durationMs: number;
}

export interface FaultFigure {
  label: string;
  durationMs: number;
  recoverMs: number | null;
  /** The next fault struck before this one had recovered (its figure includes that one's). */
  overlapped: boolean;
}

export type Status = 'pass' | 'fail' | 'pending';

export interface RowResult {
  id: string;
  title: string;
  expectation: string;
  status: Status;
  /** Why the row did not pass. */
  reasons: string[];
  notes: string[];
  faults: number;
  /** Changes in the server's history (the row's scope). */
  written: number;
  /** Writes the writer saw fail (while a server was down): not changes, not in the history. */
  writeFailures: number;
  /** Jobs the history calls for (a namespace-wide change is one job per worker name). */
  jobsExpected: number;
  /** Jobs added to the queues (Redis' own record). */
  enqueued: number;
  /** Expected jobs handled at least once. */
  handled: number;
  /** Changes never handled. */
  lost: number;
  /** Events enqueued more than once (extra adds of one job id). */
  duplicates: number;
  /** Handler calls repeated after a crash (at-least-once; not duplicates). */
  reruns: number;
  orderViolations: number;
  /** Jobs handled or enqueued that the history does not call for. */
  unexpected: number;
  /**
   * Longest time from a fault's end until every change written before it was handled, over the
   * faults that recovered before the next one struck; null when a change was never handled.
   */
  recoverMs: number | null;
  /** Each fault: how long it lasted and how long the pipeline took to catch up after it. */
  faultWindows: FaultFigure[];
  /** For the row expecting a stop: what the ingest did after Redis came back empty. */
  stop?: { stopped: boolean; message: string | null; addedAfterReset: number };
  examples: { lost: string[]; orderViolations: string[]; duplicates: string[] };
  durationMs: number;
}

const EXPECTATIONS = {
  clean: 'nothing lost, enqueued twice or out of order; catches up',
  stop: 'the ingest stops and says so; nothing enqueued after',
} as const;

/** A cluster time as one comparable number (seconds in the high 32 bits). */
function clusterKey(time: Timestamp): bigint {
  return (BigInt(time.getHighBitsUnsigned()) << 32n) | BigInt(time.getLowBitsUnsigned());
}

function describeJob(job: ExpectedJob): string {
  const ns = (job.event as { ns?: { db: string; coll?: string } }).ns;
  const subject = job.doc ?? (ns ? `${ns.db}.${ns.coll ?? ''}` : '?');
  return `${job.event.operationType} of ${subject} at ${job.position} (worker ${job.worker})`;
}

/** The last line of a process's output that says something (its error, usually). */
function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  const line = lines[lines.length - 1] ?? '';
  try {
    const parsed = JSON.parse(line) as { msg?: string; err?: { message?: string } };
    return parsed.msg ?? parsed.err?.message ?? line;
  } catch {
    return line;
  }
}

export function measure(run: RowRun): RowResult {
  const report = checkDeliveries(run.expected, run.calls);
  const expectedKeys = new Set(run.expected.map((job) => jobKey(job.worker, job.jobId)));
  const addsPerJob = new Map<string, number>();
  for (const add of run.enqueues.adds) {
    const key = jobKey(add.worker, add.jobId);
    addsPerJob.set(key, (addsPerJob.get(key) ?? 0) + 1);
  }
  const duplicated = [...addsPerJob].filter(([, adds]) => adds > 1);
  const duplicates = duplicated.reduce((sum, [, adds]) => sum + adds - 1, 0);
  const stray = [...addsPerJob.keys()].filter((key) => !expectedKeys.has(key));
  const reasons = [...run.failures];
  const notes = [...run.notes];

  // Recovery: each fault's end until every change written before it was handled. A fault that
  // struck again before the previous one had recovered makes that one's figure a sum of both:
  // it is kept per fault but left out of the row's figure (the last fault's always counts).
  const faultWindows: FaultFigure[] = [];
  let unrecovered = false;
  for (const [index, window] of run.windows.entries()) {
    const limit = clusterKey(window.endCluster);
    let latest = window.end;
    let missing = false;
    for (const job of run.expected) {
      const at = (job.event as { clusterTime?: Timestamp }).clusterTime;
      if (!at || clusterKey(at) > limit) continue;
      const handledAt = report.firstHandledAt.get(jobKey(job.worker, job.jobId));
      if (handledAt === undefined) missing = true;
      else latest = Math.max(latest, handledAt);
    }
    const next = run.windows[index + 1];
    unrecovered ||= missing;
    faultWindows.push({
      label: window.label,
      durationMs: window.end - window.start,
      recoverMs: missing ? null : latest - window.end,
      overlapped: !missing && next !== undefined && latest > next.start,
    });
  }
  const measured = faultWindows.filter((figure) => !figure.overlapped);
  const recoverMs =
    unrecovered || measured.length === 0
      ? null
      : Math.max(...measured.map((figure) => figure.recoverMs ?? 0));

  const lost = report.lost.length;
  const result: RowResult = {
    id: run.id,
    title: run.title,
    expectation: EXPECTATIONS[run.expect],
    status: 'pass',
    reasons,
    notes,
    faults: run.windows.length,
    written: run.truth.filter((event) => event.operationType !== 'invalidate').length,
    writeFailures: run.writes.failures,
    jobsExpected: run.expected.length,
    enqueued: run.enqueues.adds.length,
    handled: report.handled,
    lost,
    duplicates,
    reruns: report.reruns,
    orderViolations: report.orderViolations.length,
    unexpected: report.unexpected.length + stray.length,
    recoverMs,
    faultWindows,
    examples: {
      lost: report.lost.slice(0, 3).map(describeJob),
      orderViolations: report.orderViolations
        .slice(0, 3)
        .map((v) => `${v.kind}: ${v.subject} at ${v.position} (worker ${v.worker}, pid ${v.pid})`),
      duplicates: duplicated.slice(0, 3).map(([key, adds]) => `${key} added ${adds} times`),
    },
    durationMs: run.durationMs,
  };
  if (run.windows.length === 0) reasons.push('no fault was injected');
  const overlapped = faultWindows.filter((figure) => figure.overlapped).length;
  if (overlapped > 0)
    notes.push(
      `${overlapped} of ${faultWindows.length} faults struck again before the pipeline had caught up (left out of "recover"; each fault's figure is in --json)`,
    );
  if (run.enqueues.incomplete.length > 0) {
    reasons.push(
      `the enqueue record of ${run.enqueues.incomplete.join(', ')} is incomplete (its stream was trimmed before it was read): duplicates cannot be ruled out`,
    );
  }
  if (report.failedCalls > 0 || report.abortedCalls > 0) {
    notes.push(
      `${report.failedCalls} planned handler failures retried, ${report.abortedCalls} calls aborted`,
    );
  }

  if (run.expect === 'stop') {
    const resetAt = run.resetAt ?? Infinity;
    const addedAfterReset = run.enqueues.adds.filter((add) => add.at >= resetAt).length;
    const ingestExit = run.ownExits.find(({ role }) => role === 'ingest')?.exit;
    const stopped = ingestExit !== undefined && ingestExit.code !== 0;
    const message = ingestExit ? lastLine(ingestExit.tail) : null;
    result.stop = { stopped, message, addedAfterReset };
    result.recoverMs = null; // nothing to recover to: an operator decides
    notes.push(`${lost} changes were in Redis only when it lost its data (not handled)`);
    if (!stopped) {
      reasons.push(
        `the ingest went on after Redis came back empty: ${addedAfterReset} jobs added after, ${duplicates} events enqueued a second time`,
      );
      result.status = 'fail';
      return result;
    }
    if (!/resync|token set/.test(ingestExit.tail))
      reasons.push(
        `the ingest stopped without naming the ways on (changeq resync, token set --at): "${message}"`,
      );
    if (addedAfterReset > 0)
      reasons.push(`${addedAfterReset} jobs were added after Redis came back empty`);
    if (duplicates > 0) reasons.push(`${duplicates} events were enqueued twice`);
  } else {
    if (lost > 0) reasons.push(`${lost} changes never handled`);
    if (duplicates > 0) reasons.push(`${duplicates} events enqueued twice`);
    if (report.orderViolations.length > 0)
      reasons.push(`${report.orderViolations.length} per-document order violations`);
    if (result.unexpected > 0)
      reasons.push(`${result.unexpected} jobs enqueued or handled that no change calls for`);
    const marks = checkTransactionMarks(run.expected, run.calls);
    if (marks.problems.length > 0) {
      reasons.push(
        `${marks.problems.length} handler calls with a wrong ctx.transaction, e.g. ${marks.problems.slice(0, 2).join('; ')}`,
      );
    } else if (marks.transactions > 0) {
      notes.push(
        `every call of the ${marks.transactions} transactions carried its id, index and count`,
      );
    }
    for (const { role, exit } of run.ownExits) {
      reasons.push(
        `${role} (pid ${exit.pid}) exited by itself with code ${exit.code}: ${lastLine(exit.tail)}`,
      );
    }
  }
  if (reasons.length > 0) result.status = 'fail';
  return result;
}

/** A row that is listed but cannot run yet. */
export function pendingResult(id: string, title: string, why: string): RowResult {
  return {
    id,
    title,
    expectation: EXPECTATIONS.clean,
    status: 'pending',
    reasons: [],
    notes: [why],
    faults: 0,
    written: 0,
    writeFailures: 0,
    jobsExpected: 0,
    enqueued: 0,
    handled: 0,
    lost: 0,
    duplicates: 0,
    reruns: 0,
    orderViolations: 0,
    unexpected: 0,
    recoverMs: null,
    faultWindows: [],
    examples: { lost: [], orderViolations: [], duplicates: [] },
    durationMs: 0,
  };
}
