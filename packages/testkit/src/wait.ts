/**
 * Polls `check` until it holds; after `timeoutMs` fails with "timed out after N ms waiting for
 * <what>", where `what` may be computed then (to show the state that was wrong).
 */
export async function waitFor(
  check: () => Promise<boolean> | boolean,
  what: string | (() => Promise<string> | string),
  timeoutMs = 30_000,
  intervalMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) {
      const detail = typeof what === 'string' ? what : await what();
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${detail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
