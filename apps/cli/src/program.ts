/**
 * `changeq`: one entry point for the operator commands, each with `--help`. Commander parses;
 * every parse error becomes a UserError (one line naming the problem and the fix, exit 2).
 */
import type { CommanderError } from 'commander';
import { Command, Option } from 'commander';
import { UserError, createLogger, type Logger } from '@changeq/shared';
import { dlqAct, dlqList } from './commands/dlq.js';
import { pauseCommand, type PauseFlags } from './commands/pause.js';
import { preimages } from './commands/preimages.js';
import { resync } from './commands/resync.js';
import { statusCommand } from './commands/status.js';
import { tokenReset, tokenSet, tokenShow } from './commands/token.js';
import { Settings, type ConnectionFlags } from './settings.js';

/** Thrown to end the parse after `--help` printed its text (exit 0). */
export class HelpShown extends Error {}

type Connection = 'redis' | 'mongo' | 'workers' | 'prefix' | 'ingest' | 'watch';

const CONNECTION_OPTIONS: Record<Connection, () => Option[]> = {
  redis: () => [new Option('--redis-url <url>', 'Redis of the queues [REDIS_URL]')],
  mongo: () => [new Option('--mongodb-uri <uri>', 'MongoDB connection string [MONGODB_URI]')],
  workers: () => [
    new Option('--workers-file <path>', 'the worker names [WORKERS_FILE] (default ./workers.toml)'),
  ],
  prefix: () => [
    new Option('--prefix <prefix>', 'prefix of the Redis keys [QUEUE_PREFIX] (default changeq)'),
  ],
  ingest: () => [new Option('--ingest-id <id>', "the ingest's id [INGEST_ID] (default default)")],
  watch: () => [
    new Option(
      '--watch <scope>',
      "what the ingest watches [WATCH]: '' = deployment, db, or db.coll,db.coll",
    ),
  ],
};

function withConnection(command: Command, needs: Connection[]): Command {
  for (const need of needs)
    for (const option of CONNECTION_OPTIONS[need]()) command.addOption(option);
  command.addOption(
    new Option(
      '--connect-timeout-ms <ms>',
      'give up on an unreachable server after this long',
    ).default('3000'),
  );
  return command;
}

const destructive = (command: Command, what: string) =>
  command.option('-y, --yes', `${what} without asking (required when stdin is not a terminal)`);

const ingestCheck = (command: Command) =>
  command.option(
    '--ingest-stopped',
    'skip the check that no ingest is connected (only when Redis refuses CLIENT LIST)',
  );

function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

function toUserError(error: CommanderError, command: Command): Error {
  const path = commandPath(command);
  if (error.code === 'commander.help' || error.code === 'commander.executeSubCommandAsync') {
    const subcommands = command.commands.map((c) => c.name()).filter((n) => n !== 'help');
    return new UserError(
      command.parent ? `"${path}" needs a command (${subcommands.join(', ')})` : 'no command given',
      `run \`${path} --help\` to see the commands: ${subcommands.join(', ')}`,
    );
  }
  const problem = error.message
    .replace(/^error: /, '')
    .replace(/\s*\n\s*/g, ' ')
    .replace(/\.$/, '');
  const fix =
    error.code === 'commander.unknownCommand'
      ? `run \`${path} --help\` to see the commands: ${command.commands
          .map((c) => c.name())
          .filter((n) => n !== 'help')
          .join(', ')}`
      : `run \`${path} --help\` to see its arguments and options`;
  return new UserError(problem, fix);
}

/** Applies the error handling and output settings to a command and all its subcommands. */
function configure(command: Command, io: ProgramIo): void {
  command.exitOverride((error) => {
    if (error.exitCode === 0) throw new HelpShown(error.message);
    throw toUserError(error, command);
  });
  command.configureOutput({
    writeOut: (text) => io.stdout.write(text),
    // Commander writes errors and help-after-error here; our UserError says it in one line.
    writeErr: () => undefined,
    outputError: () => undefined,
  });
  command.showSuggestionAfterError(true);
  for (const sub of command.commands) configure(sub, io);
}

export interface ProgramIo {
  stdout: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

const ENVIRONMENT = `
Settings come from the same environment as the ingest and the workers; flags override them:
  REDIS_URL, MONGODB_URI, WORKERS_FILE (./workers.toml), QUEUE_PREFIX (changeq), INGEST_ID (default),
  WATCH (resync), LOG_LEVEL / LOG_FORMAT (diagnostics on stderr),
  REDIS_TLS_CA, REDIS_TLS_CERT, REDIS_TLS_KEY (PEM files, for rediss://).
Human output goes to stdout, diagnostics and progress to stderr. A wrong input or an
unreachable server prints one line naming the problem and the fix, exit code 2.
See docs/operations.md.`;

export function buildProgram(
  io: ProgramIo = { stdout: process.stdout, env: process.env },
): Command {
  let logger: Logger | undefined;
  const log = () => (logger ??= createLogger({ name: 'changeq', env: io.env }));
  const settings = (options: ConnectionFlags) => new Settings(options, io.env);

  const program = new Command('changeq')
    .description(
      'Operate changeq: status, pause and resume, resume token, dead letters, pre-images, resync.',
    )
    .addHelpText('after', ENVIRONMENT);

  withConnection(
    program
      .command('status')
      .description(
        'the resume position and its lag, queue and dead-letter counts, blocked documents, and which workers have a live process',
      )
      .option('--json', 'print the status as JSON (shape: docs/operations.md)'),
    ['redis', 'workers', 'prefix', 'ingest'],
  ).action(async (options: ConnectionFlags & { json?: boolean }) => {
    await statusCommand(settings(options), { json: options.json === true });
  });

  const token = program
    .command('token')
    .description("the ingest's stored resume position: show, reset, set --at <time>");
  withConnection(
    token
      .command('show')
      .description('decode and print the stored position (or start time) and its time')
      .option('--json', 'print it as JSON'),
    ['redis', 'prefix', 'ingest'],
  ).action(async (options: ConnectionFlags & { json?: boolean }) => {
    await tokenShow(settings(options), { json: options.json === true });
  });
  withConnection(
    ingestCheck(
      destructive(
        token
          .command('reset')
          .description(
            'delete the stored position: the next ingest start begins at START_AT (now, a time, or snapshot)',
          ),
        'delete it',
      ),
    ),
    ['redis', 'prefix', 'ingest'],
  ).action(async (options: ConnectionFlags & { yes?: boolean; ingestStopped?: boolean }) => {
    await tokenReset(
      settings(options),
      { yes: options.yes === true, ingestStopped: options.ingestStopped === true },
      log(),
    );
  });
  withConnection(
    ingestCheck(
      destructive(
        token
          .command('set')
          .description(
            'make the next ingest start stream every change from a time on (events the queues already hold are skipped)',
          )
          .requiredOption('--at <time>', 'an ISO 8601 date-time, e.g. 2026-11-22T08:00:00Z'),
        'replace the stored position',
      ),
    ),
    ['redis', 'prefix', 'ingest'],
  ).action(
    async (options: ConnectionFlags & { at: string; yes?: boolean; ingestStopped?: boolean }) => {
      await tokenSet(
        settings(options),
        {
          at: options.at,
          yes: options.yes === true,
          ingestStopped: options.ingestStopped === true,
        },
        log(),
      );
    },
  );

  const dlq = program.command('dlq').description("a worker's dead letters: list, retry, discard");
  const workerOption = () =>
    new Option('--worker <name>', 'a worker name from workers.toml').makeOptionMandatory();
  withConnection(
    dlq
      .command('list')
      .description('dead letters first, then the events parked behind them, in line order')
      .addOption(workerOption())
      .option('--job <id>', 'only this job')
      .option('--json', 'print the entries as JSON'),
    ['redis', 'workers', 'prefix'],
  ).action(async (options: ConnectionFlags & { worker: string; job?: string; json?: boolean }) => {
    await dlqList(settings(options), { ...options, json: options.json === true });
  });
  for (const op of ['retry', 'discard'] as const) {
    const command = dlq
      .command(op)
      .description(
        op === 'retry'
          ? 'run a dead letter again (then the events parked behind it, in order)'
          : 'drop a dead letter without running it (the events parked behind it then run)',
      )
      .addOption(workerOption())
      .option('--job <id>', 'one dead letter (a parked event too, for discard)')
      .option('--all', 'every dead letter of the worker');
    if (op === 'discard') destructive(command, 'discard');
    withConnection(command, ['redis', 'workers', 'prefix']).action(
      async (
        options: ConnectionFlags & { worker: string; job?: string; all?: boolean; yes?: boolean },
      ) => {
        await dlqAct(
          settings(options),
          op,
          { worker: options.worker, job: options.job, all: options.all, yes: options.yes === true },
          log(),
        );
      },
    );
  }

  for (const op of ['pause', 'resume'] as const) {
    withConnection(
      program
        .command(op)
        .description(
          op === 'pause'
            ? 'pause the ingest (it enqueues nothing, keeps its lease and position) or a worker (its handler calls under way finish, none starts)'
            : 'resume a paused ingest or worker where it stopped',
        )
        .option('--ingest', 'the ingest of INGEST_ID (--ingest-id)')
        .option('--worker <name>', 'a worker name from workers.toml')
        .option(
          '--wait',
          `wait until the active process confirms it is ${op === 'pause' ? 'paused' : 'running'}`,
        )
        .option('--wait-timeout <seconds>', 'give up waiting after this long (default 60)'),
      ['redis', 'workers', 'prefix', 'ingest'],
    ).action(async (options: ConnectionFlags & PauseFlags) => {
      await pauseCommand(settings(options), op === 'pause', options);
    });
  }

  const pre = program
    .command('preimages')
    .description(
      'change stream pre- and post-images of a collection (for FULL_DOCUMENT_BEFORE_CHANGE)',
    );
  for (const op of ['enable', 'disable'] as const) {
    withConnection(
      pre
        .command(op)
        .description(`${op} changeStreamPreAndPostImages on a collection (collMod)`)
        .argument('<namespace>', 'the collection, as <database>.<collection>'),
      ['mongo'],
    ).action(async (namespace: string, options: ConnectionFlags) => {
      await preimages(settings(options), op === 'enable', namespace);
    });
  }

  withConnection(
    ingestCheck(
      destructive(
        program
          .command('resync')
          .description(
            "copy the watched collections into the queues (the ingest's snapshot) while the ingest is stopped; its next start streams every change since the copy began",
          )
          .option('--fresh', 'start an interrupted copy over instead of resuming it'),
        'replace a stored position',
      ),
    ),
    ['redis', 'mongo', 'workers', 'prefix', 'ingest', 'watch'],
  ).action(
    async (
      options: ConnectionFlags & { yes?: boolean; ingestStopped?: boolean; fresh?: boolean },
    ) => {
      await resync(
        settings(options),
        {
          yes: options.yes === true,
          ingestStopped: options.ingestStopped === true,
          fresh: options.fresh === true,
        },
        log(),
      );
    },
  );

  configure(program, io);
  return program;
}

/** Parses and runs; resolves when the command is done. */
export async function run(argv: readonly string[], io?: ProgramIo): Promise<void> {
  const program = buildProgram(io);
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof HelpShown) return;
    throw error;
  }
}
