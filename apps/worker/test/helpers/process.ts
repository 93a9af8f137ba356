import { join, resolve } from 'node:path';
import { startApp, type TestProcess } from '@changeq/testkit';

export const APP_DIR = resolve(import.meta.dirname, '../..');
export const RECORDING_HANDLERS = join(APP_DIR, 'test/fixtures/recording-handlers.mjs');

/** Starts the built worker (`node dist/main.js`) with the given flags and environment. */
export function startWorkerProcess(args: string[], env: NodeJS.ProcessEnv): TestProcess {
  return startApp('worker', args, env, { cwd: APP_DIR });
}
