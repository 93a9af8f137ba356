/**
 * What the bench tells each pipeline process it starts, through the environment: the servers,
 * the queue prefix, the worker names, the collection and where to start. One line naming the
 * variable when one is missing: these processes are started by the bench, not by hand.
 */
import { BSON, type ChangeStreamOptions } from 'mongodb';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: this program is started by npm run bench`);
  return value;
}

export interface PipelineEnv {
  mongodbUri: string;
  redisUrl: string;
  prefix: string;
  workers: string[];
  db: string;
  coll: string;
  /** Where the stream starts: after a resume token, at an operation time, or now. */
  start: ChangeStreamOptions;
}

export function pipelineEnv(): PipelineEnv {
  const [db, coll] = required('BENCH_WATCH').split('.');
  const start = process.env.BENCH_START;
  return {
    mongodbUri: required('MONGODB_URI'),
    redisUrl: required('REDIS_URL'),
    prefix: required('BENCH_PREFIX'),
    workers: required('BENCH_WORKERS').split(','),
    db: db ?? '',
    coll: coll ?? '',
    start: start ? (BSON.EJSON.parse(start) as ChangeStreamOptions) : {},
  };
}

/** Ends the process on SIGTERM (the bench ends every process it starts, by PID). */
export function exitOnSigterm(close: () => Promise<unknown>): void {
  process.once('SIGTERM', () => {
    void close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
