/**
 * The test server's single-document write rate (64 in flight, one client, at 10k..1M documents):
 * runs packages/test-mongod's own write-rate benchmark (its server in a process of its own) and
 * reads its JSON, so the logic lives in one place.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '@changeq/testkit';

export interface KindRate {
  perSecond: number;
  serverCpuUsPerWrite?: number;
  clientCpuUsPerWrite: number;
  limitedBy?: 'server' | 'client';
}

export interface WriteRate {
  sizes: {
    docs: number;
    insert: KindRate;
    update: KindRate;
    delete: KindRate;
    serverRssMB: number;
  }[];
  pingCeiling: KindRate;
  verdict: string;
}

export const WRITE_RATE_SCRIPT = join(
  REPO_ROOT,
  'packages/test-mongod/dist-bench/bench/write-rate.js',
);

export async function testServerWriteRate(quick: boolean): Promise<WriteRate> {
  if (!existsSync(WRITE_RATE_SCRIPT)) {
    throw new Error(
      `${WRITE_RATE_SCRIPT} is missing: build it (npx tsc -p packages/test-mongod/tsconfig.bench.json)`,
    );
  }
  const args = [WRITE_RATE_SCRIPT, '--json', '--no-goal'];
  if (quick) args.push('--quick', '--sizes', '10000,100000');
  const { stdout } = await promisify(execFile)(process.execPath, args, {
    maxBuffer: 16 * 2 ** 20,
  });
  const parsed = JSON.parse(stdout) as {
    results: WriteRate['sizes'];
    pingCeiling: KindRate;
    verdict: string;
  };
  return { sizes: parsed.results, pingCeiling: parsed.pingCeiling, verdict: parsed.verdict };
}
