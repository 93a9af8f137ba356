/** The command line of `npm run bench`; bad input gets one line naming the problem and the fix. */
import { parseArgs } from 'node:util';

export const SECTIONS = ['drain', 'latency', 'workers', 'write-rate'] as const;
export type Section = (typeof SECTIONS)[number];

export const USAGE = `Usage: npm run bench -- [--quick] [--json] [--charts <dir>] [--only <sections>] [--events <n>] [--jobs <n>]

  --quick           fewer events (under 3 minutes on 2 cores)
  --json            print one JSON object on stdout (progress goes to stderr)
  --charts <dir>    write the charts (SVG) there, e.g. docs/benchmarks
  --only <list>     run only these sections, comma-separated: ${SECTIONS.join(', ')}
  --events <n>      backlog size of the drain (default 100000, 20000 with --quick)
  --jobs <n>        jobs each no-op worker run drains at concurrency 16 and 32 (default 20000,
                    4000 with --quick); concurrency 1 drains half as many
  --from <file>     measure nothing: print the report (and --charts) of a saved --json run`;

export interface Options {
  quick: boolean;
  json: boolean;
  charts?: string;
  sections: Section[];
  events: number;
  /** Jobs of a no-op worker run at concurrency 16 and 32 (half at concurrency 1). */
  jobs: number;
  from?: string;
  help: boolean;
}

export class OptionError extends Error {}

export function parseOptions(argv: string[]): Options {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        quick: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        charts: { type: 'string' },
        only: { type: 'string' },
        events: { type: 'string' },
        jobs: { type: 'string' },
        from: { type: 'string' },
        help: { type: 'boolean', default: false },
      },
    }));
  } catch (error) {
    throw new OptionError(`${(error as Error).message}; run with --help to see the options`);
  }
  const sections = values.only ? values.only.split(',').map((s) => s.trim()) : [...SECTIONS];
  for (const s of sections) {
    if (!(SECTIONS as readonly string[]).includes(s)) {
      throw new OptionError(`--only: unknown section "${s}"; pick from ${SECTIONS.join(', ')}`);
    }
  }
  const events = wholeNumber('--events', values.events, values.quick ? 20_000 : 100_000);
  const jobs = wholeNumber('--jobs', values.jobs, values.quick ? 4000 : 20_000);
  return {
    quick: values.quick,
    json: values.json,
    ...(values.charts ? { charts: values.charts } : {}),
    ...(values.from ? { from: values.from } : {}),
    sections: sections as Section[],
    events,
    jobs,
    help: values.help,
  };
}

function wholeNumber(option: string, given: string | undefined, fallback: number): number {
  const n = Number(given ?? fallback);
  if (!Number.isInteger(n) || n < 1000) {
    throw new OptionError(`${option} must be a whole number of at least 1000, got "${given}"`);
  }
  return n;
}
