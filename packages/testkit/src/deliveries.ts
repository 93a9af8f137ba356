/**
 * What the recording handlers (recording-handlers.ts) saw, checked against what the server says
 * happened: every change handled (at least once), and per document never out of oplog order,
 * with namespace-wide events (drop, rename, dropDatabase) as barriers in each worker.
 */
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BSON, type ChangeStreamDocument } from 'mongodb';

/** The handlers module that records every call (give it to a worker with --handlers). */
export function recordingHandlersPath(): string {
  return fileURLToPath(new URL('./recording-handlers.js', import.meta.url));
}

/** One line of the record: a handler call's start (`s`) or end (`e`, with its result). */
export interface HandlerCall {
  ph: 's' | 'e';
  /** The worker name. */
  w: string;
  pid: number;
  job: string;
  /** The event's position: its resume token's `_data`. */
  pos: string;
  doc: string;
  /** The attempt (1 on the first call; a call after a crash repeats the attempt number). */
  a: number;
  /** Date.now() in the worker process. */
  t: number;
  r?: 'ok' | 'fail' | 'aborted';
  /** ctx.transaction of the call (on start lines; absent outside transactions). */
  tx?: { id: string; index: number; count: number };
}

/** Reads the record file as it grows: each read returns the lines completed since the last. */
export class CallLog {
  readonly calls: HandlerCall[] = [];
  private offset = 0;
  private partial = '';

  constructor(readonly file: string) {}

  read(): HandlerCall[] {
    if (!existsSync(this.file)) return [];
    const fd = openSync(this.file, 'r');
    const fresh: HandlerCall[] = [];
    try {
      const buffer = Buffer.alloc(1 << 20);
      for (;;) {
        const n = readSync(fd, buffer, 0, buffer.length, this.offset);
        if (n === 0) break;
        this.offset += n;
        const text = this.partial + buffer.toString('utf8', 0, n);
        const lines = text.split('\n');
        this.partial = lines.pop() ?? '';
        for (const line of lines) if (line) fresh.push(JSON.parse(line) as HandlerCall);
      }
    } finally {
      closeSync(fd);
    }
    this.calls.push(...fresh);
    return fresh;
  }
}

/** One job the ingest should have produced for a change: which worker runs it, and its place. */
export interface ExpectedJob {
  worker: string;
  jobId: string;
  /** The change's resume-token `_data` (sorts in oplog order). */
  position: string;
  /** The document (namespace and canonical _id); null for a namespace-wide event (a barrier). */
  doc: string | null;
  event: ChangeStreamDocument;
}

const NAMESPACE_EVENTS = new Set(['drop', 'rename', 'dropDatabase']);

/** The document of a change, as `db.coll:<canonical Extended JSON of _id>`; null when none. */
export function documentOf(event: ChangeStreamDocument): string | null {
  const key = (event as { documentKey?: { _id?: unknown } }).documentKey;
  if (!key || !('_id' in key) || NAMESPACE_EVENTS.has(event.operationType)) return null;
  const ns = (event as { ns: { db: string; coll?: string } }).ns;
  return `${ns.db}.${ns.coll ?? ''}:${BSON.EJSON.stringify(key._id, { relaxed: false })}`;
}

/**
 * The jobs the server's change history calls for: `route` names the worker(s) of one change
 * (the product's router; every worker for a namespace-wide event). `invalidate` has no job.
 */
export function expectedJobs(
  truth: readonly ChangeStreamDocument[],
  route: (event: ChangeStreamDocument) => readonly { worker: string; jobId: string }[],
): ExpectedJob[] {
  return truth
    .filter((event) => event.operationType !== 'invalidate')
    .flatMap((event) =>
      route(event).map(({ worker, jobId }) => ({
        worker,
        jobId,
        position: (event._id as { _data: string })._data.toUpperCase(),
        doc: documentOf(event),
        event,
      })),
    );
}

export type ViolationKind =
  /** A document's event started while an earlier event of that document was not handled yet. */
  | 'overtook an earlier event'
  /** A call (start or success) of an event came after a later event of its document had started. */
  | 'ran after a later event'
  /** A namespace-wide event started while an earlier event of its worker was not handled yet. */
  | 'barrier overtook an earlier event'
  /** An event started while a namespace-wide event before it (same worker) was not handled yet. */
  | 'overtook a barrier';

export interface OrderViolation {
  kind: ViolationKind;
  worker: string;
  /** The document, or the namespace of a barrier. */
  subject: string;
  position: string;
  pid: number;
  at: number;
}

export interface DeliveryReport {
  /** Jobs the history calls for (a namespace-wide change counts once per worker). */
  expected: number;
  /** Expected jobs with at least one successful call. */
  handled: number;
  /** Expected jobs never handled. */
  lost: ExpectedJob[];
  /** Successful calls beyond the first of a job: the at-least-once re-runs after a crash. */
  reruns: number;
  /** Calls that failed (planned failures, later retried) or were aborted. */
  failedCalls: number;
  abortedCalls: number;
  /** Successful calls of jobs the history does not call for (or by the wrong worker). */
  unexpected: HandlerCall[];
  orderViolations: OrderViolation[];
  /** When each expected job (`worker/jobId`) was first handled (Date.now() of its ok). */
  firstHandledAt: Map<string, number>;
}

export function jobKey(worker: string, jobId: string): string {
  return `${worker}/${jobId}`;
}

interface Line {
  /**
   * Handled jobs in oplog order, as `worker/position` (a document's line may span workers: it
   * moves at a ring change).
   */
  positions: string[];
  /** Index of the first position not handled yet (positions never handled are skipped). */
  next: number;
}

/**
 * Checks the calls (in the order they happened) against the expected jobs. An event that is
 * never handled is lost, not an order violation: the checks of order skip it, so one loss does
 * not make every later event of its document a violation too.
 */
export function checkDeliveries(
  expected: readonly ExpectedJob[],
  calls: readonly HandlerCall[],
): DeliveryReport {
  const byKey = new Map(expected.map((job) => [jobKey(job.worker, job.jobId), job]));
  const everHandled = new Set(
    calls.filter((c) => c.ph === 'e' && c.r === 'ok').map((c) => jobKey(c.w, c.job)),
  );
  const handledPositions = (jobs: ExpectedJob[]) =>
    jobs
      .filter((job) => everHandled.has(jobKey(job.worker, job.jobId)))
      .sort((a, b) => (a.position < b.position ? -1 : a.position > b.position ? 1 : 0))
      .map((job) => `${job.worker}/${job.position}`);
  const positionOf = (entry: string) => entry.slice(entry.indexOf('/') + 1);
  // Per document: its handled events in order. Per worker: all its handled jobs in order, and
  // its barriers.
  const docJobs = new Map<string, ExpectedJob[]>();
  const workerJobs = new Map<string, ExpectedJob[]>();
  const add = (map: Map<string, ExpectedJob[]>, key: string, job: ExpectedJob) => {
    const list = map.get(key);
    if (list) list.push(job);
    else map.set(key, [job]);
  };
  for (const job of expected) {
    if (job.doc !== null) add(docJobs, job.doc, job);
    add(workerJobs, job.worker, job);
  }
  const docLines = new Map<string, Line>();
  for (const [doc, jobs] of docJobs)
    docLines.set(doc, { positions: handledPositions(jobs), next: 0 });
  const workerLines = new Map<string, Line>();
  const barrierLines = new Map<string, Line>();
  for (const [worker, jobs] of workerJobs) {
    workerLines.set(worker, { positions: handledPositions(jobs), next: 0 });
    barrierLines.set(worker, {
      positions: handledPositions(jobs.filter((job) => job.doc === null)),
      next: 0,
    });
  }
  const done = new Set<string>(); // `worker/position` handled so far
  const advance = (line: Line) => {
    while (line.next < line.positions.length && done.has(line.positions[line.next]!))
      line.next += 1;
    const entry = line.positions[line.next];
    return entry === undefined ? undefined : positionOf(entry);
  };
  const maxStarted = new Map<string, string>();

  const report: DeliveryReport = {
    expected: expected.length,
    handled: 0,
    lost: [],
    reruns: 0,
    failedCalls: 0,
    abortedCalls: 0,
    unexpected: [],
    orderViolations: [],
    firstHandledAt: new Map(),
  };
  const violation = (kind: ViolationKind, call: HandlerCall, subject: string) =>
    report.orderViolations.push({
      kind,
      worker: call.w,
      subject,
      position: call.pos.toUpperCase(),
      pid: call.pid,
      at: call.t,
    });

  for (const call of calls) {
    const key = jobKey(call.w, call.job);
    const job = byKey.get(key);
    if (call.ph === 'e' && call.r !== 'ok') {
      if (call.r === 'fail') report.failedCalls += 1;
      else report.abortedCalls += 1;
      continue;
    }
    if (!job) {
      if (call.ph === 'e') report.unexpected.push(call);
      continue;
    }
    const position = job.position;
    if (job.doc !== null) {
      const latest = maxStarted.get(job.doc) ?? '';
      if (latest > position) violation('ran after a later event', call, job.doc);
      else if (call.ph === 's') {
        const first = advance(docLines.get(job.doc)!);
        if (first !== undefined && first < position)
          violation('overtook an earlier event', call, job.doc);
      }
      if (call.ph === 's') {
        if (position > latest) maxStarted.set(job.doc, position);
        const barrier = advance(barrierLines.get(job.worker)!);
        if (barrier !== undefined && barrier < position)
          violation('overtook a barrier', call, job.doc);
      }
    } else if (call.ph === 's') {
      const first = advance(workerLines.get(job.worker)!);
      const ns = (job.event as { ns?: { db: string; coll?: string } }).ns;
      const subject = ns ? `${ns.db}${ns.coll === undefined ? '' : `.${ns.coll}`}` : '?';
      if (first !== undefined && first < position)
        violation('barrier overtook an earlier event', call, subject);
    }
    if (call.ph === 'e') {
      if (report.firstHandledAt.has(key)) report.reruns += 1;
      else report.firstHandledAt.set(key, call.t);
      done.add(`${job.worker}/${position}`);
    }
  }
  report.handled = report.firstHandledAt.size;
  report.lost = expected.filter((job) => !report.firstHandledAt.has(jobKey(job.worker, job.jobId)));
  return report;
}

/**
 * Every handled call's `ctx.transaction` against the transactions the history shows: the events
 * of `expected` (what the stream shows) with one `lsid` and `txnNumber`, one after another, are
 * one transaction; each call must carry its id (their canonical Extended JSON), its index among
 * them and their count, and a call of an event outside transactions must carry none. Computed
 * here from the history alone, not with the ingest's code. Returns each wrong call, described.
 */
export function checkTransactionMarks(
  expected: readonly ExpectedJob[],
  calls: readonly HandlerCall[],
): { transactions: number; problems: string[] } {
  const events = [...new Map(expected.map((job) => [job.position, job.event])).entries()].sort(
    ([a], [b]) => (a < b ? -1 : a > b ? 1 : 0),
  );
  const idOf = (event: ChangeStreamDocument): string | null => {
    const { lsid, txnNumber } = event as { lsid?: unknown; txnNumber?: unknown };
    return lsid === undefined || txnNumber === undefined
      ? null
      : BSON.EJSON.stringify({ lsid, txnNumber }, { relaxed: false });
  };
  const marks = new Map<string, { id: string; index: number; count: number } | null>();
  let transactions = 0;
  for (let start = 0; start < events.length;) {
    const id = idOf(events[start]![1]);
    let end = start + 1;
    while (id !== null && end < events.length && idOf(events[end]![1]) === id) end++;
    if (id !== null) transactions++;
    for (let i = start; i < end; i++) {
      marks.set(events[i]![0], id === null ? null : { id, index: i - start, count: end - start });
    }
    start = end;
  }
  const problems: string[] = [];
  for (const call of calls) {
    if (call.ph !== 's' || !marks.has(call.pos)) continue;
    const want = marks.get(call.pos) ?? null;
    const got = call.tx ?? null;
    if (JSON.stringify(want) !== JSON.stringify(got)) {
      problems.push(
        `${call.pos} (worker ${call.w}): ctx.transaction ${got ? `${got.index}/${got.count}` : 'none'}, the history says ${want ? `${want.index}/${want.count}` : 'none'}${got && want && got.id !== want.id ? ' (another id)' : ''}`,
      );
    }
  }
  return { transactions, problems };
}
