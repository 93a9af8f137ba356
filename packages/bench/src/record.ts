/**
 * Records when a handler started, for the latency figures: one line per call, "seq start jobId
 * jobTimestamp", appended with one write(2) to BENCH_RECORD_FILE (O_APPEND, so the lines of
 * several processes never mix). The clock is the wall clock with sub-millisecond resolution
 * (performance.timeOrigin + performance.now()), the same one the load generator stamps its writes
 * with: all processes run on this machine and read the same CLOCK_REALTIME.
 */
import { openSync, writeSync } from 'node:fs';

export const wallNow = (): number => performance.timeOrigin + performance.now();

export function recorder(): (seq: number, jobId: string, jobTimestamp?: number) => void {
  const file = process.env.BENCH_RECORD_FILE;
  if (!file) throw new Error('BENCH_RECORD_FILE is not set: this is started by npm run bench');
  const fd = openSync(file, 'a');
  return (seq, jobId, jobTimestamp) => {
    writeSync(fd, `${seq} ${wallNow().toFixed(3)} ${jobId} ${jobTimestamp ?? ''}\n`);
  };
}

export interface HandlerCall {
  seq: number;
  start: number;
  jobId: string;
  /** BullMQ's job.timestamp (ms, set by the process that added the job), when the handler saw it. */
  jobTimestamp: number | undefined;
}

export function parseRecords(text: string): HandlerCall[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [seq, start, jobId, ts] = line.split(' ');
      return {
        seq: Number(seq),
        start: Number(start),
        jobId: jobId ?? '',
        jobTimestamp: ts ? Number(ts) : undefined,
      };
    });
}
