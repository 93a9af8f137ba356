/**
 * A worker handlers module (`--handlers`, see recordingHandlersPath) that records every handler
 * call as two JSON lines in one file shared by every worker process, its start and its end:
 *
 *   {"ph":"s","w":worker,"pid":…,"job":jobId,"pos":resume-token _data,"doc":…,"a":attempt,"t":ms,
 *    "tx":ctx.transaction (only in a transaction)}
 *   {"ph":"e",…,"r":"ok"|"fail"|"aborted"}
 *
 * The file, not Redis: the fault tests break Redis, and the record must outlive what it
 * measures. Every line is one write(2) on a file opened with O_APPEND, so lines of concurrent
 * processes never mix and the file's order is the order the calls happened in.
 *
 * CHANGEQ_RECORD_FILE (required), CHANGEQ_RECORD_FAIL_RATE (the share of first attempts that
 * fail, chosen by a hash of the job id), CHANGEQ_RECORD_SLEEP_MAX_MS (each call sleeps up to
 * this long, also chosen by hash). The handler honours ctx.signal as handlers must: an aborted
 * call records "aborted" and throws instead of recording "ok".
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { BSON } from 'mongodb';

interface Event {
  _id: { _data: string };
  ns?: { db: string; coll?: string };
  documentKey?: { _id: unknown };
}

interface Context {
  attempt: number;
  worker: string;
  jobId: string;
  signal: AbortSignal;
  transaction?: { id: string; index: number; count: number };
}

const file = process.env.CHANGEQ_RECORD_FILE;
if (!file) throw new Error('CHANGEQ_RECORD_FILE must name the file that records handler calls');
const fd = openSync(file, 'a');
const failRate = Number(process.env.CHANGEQ_RECORD_FAIL_RATE ?? '0');
const sleepMax = Number(process.env.CHANGEQ_RECORD_SLEEP_MAX_MS ?? '0');

/** A number in [0, 1) fixed by its parts (the same on every run and in every process). */
function unit(...parts: (string | number)[]): number {
  return createHash('sha256').update(parts.join('|')).digest().readUInt32BE(0) / 2 ** 32;
}

function record(line: object): void {
  writeSync(fd, `${JSON.stringify(line)}\n`);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}

export default async function handle(event: Event, ctx: Context): Promise<void> {
  const ns = event.ns
    ? `${event.ns.db}${event.ns.coll === undefined ? '' : `.${event.ns.coll}`}`
    : '';
  const id = event.documentKey
    ? BSON.EJSON.stringify(event.documentKey._id, { relaxed: false })
    : null;
  const call = {
    w: ctx.worker,
    pid: process.pid,
    job: ctx.jobId,
    pos: event._id._data,
    doc: id === null ? ns : `${ns}:${id}`,
    a: ctx.attempt,
  };
  record({ ph: 's', ...call, t: Date.now(), ...(ctx.transaction ? { tx: ctx.transaction } : {}) });
  if (sleepMax > 0) await sleep(unit('sleep', ctx.jobId, ctx.attempt) * sleepMax, ctx.signal);
  if (ctx.signal.aborted) {
    record({ ph: 'e', ...call, t: Date.now(), r: 'aborted' });
    throw new Error(`aborted: ${String(ctx.signal.reason)}`);
  }
  const fail = ctx.attempt === 1 && unit('fail', ctx.jobId) < failRate;
  record({ ph: 'e', ...call, t: Date.now(), r: fail ? 'fail' : 'ok' });
  if (fail) throw new Error(`planned failure of ${call.doc} at ${call.pos}`);
}

export function close(): void {
  closeSync(fd);
}
