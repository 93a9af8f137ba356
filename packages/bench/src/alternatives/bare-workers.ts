/**
 * Bare BullMQ Workers, one per queue named in BENCH_WORKERS, in this one process: the consumers
 * of alternative (a) and the worker ceiling. BENCH_HANDLER picks what each job does: `noop`,
 * `sleep5` (awaits 5 ms) or `record` (appends when it started to BENCH_RECORD_FILE, see record.ts).
 * BENCH_CONCURRENCY is each Worker's concurrency.
 */
import { Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { exitOnSigterm, pipelineEnv } from './env.js';
import { recorder } from '../record.js';

const env = pipelineEnv();
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? '16');
const kind = process.env.BENCH_HANDLER ?? 'noop';
const connection = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
const record = kind === 'record' ? recorder() : null;

const handler = async (job: Job): Promise<void> => {
  if (record) {
    const data = job.data as { fullDocument?: { seq?: number } };
    record(data.fullDocument?.seq ?? -1, job.id ?? '', job.timestamp);
  } else if (kind === 'sleep5') {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

const workers = env.workers.map(
  (name) => new Worker(name, handler, { connection, prefix: env.prefix, concurrency }),
);
exitOnSigterm(() => Promise.all(workers.map((worker) => worker.close())));
