/**
 * The handlers module the bench gives the changeq worker (--handlers): BENCH_HANDLER `noop`,
 * `sleep5` (awaits 5 ms) or `record` (records its start, see record.ts), as bare-workers.ts does
 * for bare BullMQ Workers.
 */
import { recorder } from './record.js';

const kind = process.env.BENCH_HANDLER ?? 'noop';
const record = kind === 'record' ? recorder() : null;

interface Event {
  fullDocument?: { seq?: number };
}

export default async function handle(event: Event, ctx: { jobId: string }): Promise<void> {
  if (record) record(event.fullDocument?.seq ?? -1, ctx.jobId);
  else if (kind === 'sleep5') await new Promise((resolve) => setTimeout(resolve, 5));
}
