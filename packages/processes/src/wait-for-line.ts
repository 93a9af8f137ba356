import type { ChildProcess } from 'node:child_process';

/**
 * Resolves with the first stdout line of `child` that matches `pattern`; rejects if the child
 * exits first or `timeoutMs` passes, quoting what it printed so the cause is visible.
 */
export function waitForLine(
  child: ChildProcess,
  pattern: RegExp,
  timeoutMs: number,
  what: string,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdout = child.stdout;
    if (!stdout) {
      reject(new Error(`${what}: no stdout to watch`));
      return;
    }
    let buffered = '';
    let seen = '';
    const cleanup = () => {
      clearTimeout(timer);
      stdout.off('data', onData);
      child.off('exit', onExit);
    };
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        seen = `${seen}${line}\n`.slice(-2000);
        if (pattern.test(line)) {
          cleanup();
          resolve(line);
          return;
        }
      }
    };
    const onExit = (code: number | null, signal: string | null) => {
      cleanup();
      reject(
        new Error(
          `${what} exited (code ${code}, signal ${signal}) before it was ready. Output:\n${seen}`,
        ),
      );
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${what} was not ready after ${timeoutMs} ms. Output:\n${seen}`));
    }, timeoutMs);
    stdout.on('data', onData);
    child.once('exit', onExit);
  });
}
