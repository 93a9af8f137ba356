export const USAGE = `npm run chaos [-- options]   the fault matrix (docs/reliability.md)

  --quick          short rows (under 3 minutes in all); default: the full matrix
  --json           print one JSON object instead of the table (progress stays on stderr)
  --markdown       print the table as Markdown (for docs/reliability.md)
  --only a,b       run only these rows (see --list)
  --seed n         the seed of the writer and of the fault timings (default 1)
  --keep           keep the handler call records even when every row passes
  --list           list the rows
  --help           this text

Exit code 0 when every row met its expectation, 1 when one did not, 2 on a wrong option.`;

export interface Options {
  quick: boolean;
  json: boolean;
  markdown: boolean;
  only: string[];
  seed: number;
  keep: boolean;
  list: boolean;
  help: boolean;
}

class UsageError extends Error {}

export function parseOptions(argv: readonly string[]): Options {
  const options: Options = {
    quick: false,
    json: false,
    markdown: false,
    only: [],
    seed: 1,
    keep: false,
    list: false,
    help: false,
  };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i]!;
    const value = () => {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new UsageError(`${arg} needs a value`);
      i += 1;
      return next;
    };
    if (arg === '--quick') options.quick = true;
    else if (arg === '--json') options.json = true;
    else if (arg === '--markdown') options.markdown = true;
    else if (arg === '--keep') options.keep = true;
    else if (arg === '--list') options.list = true;
    else if (arg === '--help' || arg === '-h') options.help = true;
    else if (arg === '--only') options.only.push(...value().split(',').filter(Boolean));
    else if (arg === '--seed') {
      const raw = value();
      const seed = Number(raw);
      if (!Number.isSafeInteger(seed) || seed < 0)
        throw new UsageError(`--seed ${raw} is not a whole number`);
      options.seed = seed;
    } else throw new UsageError(`unknown option ${arg}`);
  }
  return options;
}

/** The one line for a wrong command line, or null when `error` is something else. */
export function usageLine(error: unknown): string | null {
  return error instanceof UsageError
    ? `chaos: ${error.message}. Fix: see npm run chaos -- --help`
    : null;
}
