// Small helpers for reading change streams in tests with bounded waits.
import type { ChangeStream, ChangeStreamDocument, Document } from 'mongodb';

/** Read exactly `n` events, failing after `timeoutMs`. */
export async function take<T extends Document = Document>(
  stream: ChangeStream<T, ChangeStreamDocument<T>>,
  n: number,
  timeoutMs = 10_000,
): Promise<ChangeStreamDocument<T>[]> {
  const out: ChangeStreamDocument<T>[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < n) {
    if (Date.now() > deadline) throw new Error(`timed out after ${out.length} of ${n} events`);
    const ev = await stream.tryNext();
    if (ev) out.push(ev);
  }
  return out;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
