#!/usr/bin/env node
/** `changeq <command>`: the operator CLI (see program.ts and docs/operations.md). */
import { runMain } from '@changeq/shared';
import { run } from './program.js';

runMain('changeq', async () => {
  await run(process.argv.slice(2));
});
