import { createInterface } from 'node:readline/promises';
import { UserError } from '@changeq/shared';

/**
 * Asks before a destructive change: `--yes` answers for the operator; on a terminal the question
 * goes to stderr and "y"/"yes" goes ahead; without a terminal (a script, a pipe) and without
 * `--yes` the command refuses, so nothing destructive happens unattended by accident.
 */
export async function confirm(
  question: string,
  options: { yes: boolean; command: string },
  io: { stdin: NodeJS.ReadStream; stderr: NodeJS.WriteStream } = process,
): Promise<void> {
  if (options.yes) return;
  if (!io.stdin.isTTY) {
    throw new UserError(
      `${options.command} needs a confirmation (${question.replace(/\?$/, '')}), and stdin is not a terminal to ask on`,
      `rerun with --yes to confirm`,
    );
  }
  const rl = createInterface({ input: io.stdin, output: io.stderr });
  try {
    const answer = (await rl.question(`${question} [y/N] `)).trim().toLowerCase();
    if (answer !== 'y' && answer !== 'yes') {
      throw new UserError(
        'not confirmed; nothing was changed',
        `answer "y" to go ahead, or pass --yes`,
      );
    }
  } finally {
    rl.close();
  }
}
