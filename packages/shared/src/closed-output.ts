/**
 * `changeq status | head`: the reader closes the pipe before the program has written all it
 * has to say. Node then reports EPIPE as an 'error' event on process.stdout, and with nobody
 * listening the process dies with a stack trace in the middle of its work. A closed output is
 * not the program's failure: later writes to that stream are dropped, the command finishes what
 * it was doing (a retry or a discard under way completes), and the process exits as it would have.
 */
export function dropWritesOnceClosed(
  streams: readonly NodeJS.WriteStream[] = [process.stdout, process.stderr],
): void {
  for (const stream of streams) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE' && error.code !== 'ERR_STREAM_DESTROYED') throw error;
      stream.write = (() => true) as typeof stream.write;
    });
  }
}
