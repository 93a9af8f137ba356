import { dropWritesOnceClosed } from './closed-output.js';
import { redactText } from './config/redact.js';

/**
 * An error caused by the user's input (a file, a flag, an environment variable, a server address).
 * It is printed as one line naming the problem and the fix, never as a stack trace.
 */
export class UserError extends Error {
  readonly problem: string;
  readonly fix: string;
  readonly file: string | undefined;
  readonly line: number | undefined;

  constructor(problem: string, fix: string, where: { file?: string; line?: number } = {}) {
    super(problem);
    this.name = 'UserError';
    this.problem = problem;
    this.fix = fix;
    this.file = where.file;
    this.line = where.line;
  }
}

export function isUserError(error: unknown): error is UserError {
  return error instanceof UserError;
}

/** `workers.toml:3: duplicate worker name "bob". Fix: ...` */
export function formatUserError(error: UserError): string {
  const where =
    error.file === undefined
      ? ''
      : error.line === undefined
        ? `${error.file}: `
        : `${error.file}:${error.line}: `;
  const problem = error.problem.replace(/\.?\s*$/, '.');
  return `${where}${problem} Fix: ${error.fix}`;
}

/** Exit code for a user error (bad input); 1 stays for unexpected failures. */
export const USER_ERROR_EXIT_CODE = 2;

/**
 * Runs a program's main function: a UserError prints one line on stderr and exits 2,
 * anything else prints its stack and exits 1. An output closed early (`| head`) ends nothing.
 * The same goes for an error thrown later, outside `main` (a timer, an event listener, a promise
 * nobody awaited): Node would print it raw, unredacted, so it is reported here and the process
 * ends as Node would end it.
 */
export function runMain(program: string, main: () => Promise<void>): void {
  dropWritesOnceClosed();
  const report = (error: unknown): void => {
    // Both lines go through the redaction: an error may quote a connection string.
    if (isUserError(error)) {
      process.stderr.write(`${program}: ${redactText(formatUserError(error))}\n`);
      process.exitCode = USER_ERROR_EXIT_CODE;
    } else {
      const text = error instanceof Error ? (error.stack ?? error.message) : describeValue(error);
      process.stderr.write(`${program}: unexpected failure\n${redactText(text)}\n`);
      process.exitCode = 1;
    }
  };
  const fatal = (error: unknown): void => {
    report(error);
    process.exit();
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);
  main().catch(report);
}

function describeValue(value: unknown): string {
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}
