/** The command line of `npm run bench`; bad input gets one line naming the problem and the fix. */
import { parseArgs } from 'node:util';

export const SECTIONS = ['drain', 'latency', 'workers', 'write-rate'] as const;
export type Section = (typeof SECTIONS)[number];

export const USAGE = `Usage: npm run bench -- [--quick] [--json] [--charts <dir>] [--only <sections>] [--events <n>]

  --quick           fewer events (under 3 minutes on 2 cores)
  --json            print one JSON object on stdout (progress goes to stderr)
  --charts <dir>    write the charts (SVG) there, e.g. docs/benchmarks
  --only <list>     run only these sections, comma-separated: ${SECTIONS.join(', ')}
  --events <n>      backlog size of the drain (default 100000, 20000 with --quick)
  --from <file>     measure nothing: print the report (and --charts) of a saved --json run`;

export interface Options {
  quick: boolean;
  json: boolean;
  charts?: string;
  sections: Section[];
  events: number;
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
  const events = Number(values.events ?? (values.quick ? '20000' : '100000'));
  if (!Number.isInteger(events) || events < 1000) {
    throw new OptionError(
      `--events must be a whole number of at least 1000, got "${values.events}"`,
    );
  }
  return {
    quick: values.quick,
    json: values.json,
    ...(values.charts ? { charts: values.charts } : {}),
    ...(values.from ? { from: values.from } : {}),
    sections: sections as Section[],
    events,
    help: values.help,
  };
}
