/**
 * Follows workers.toml: calls `onChange` with the new configuration whenever the file is saved
 * with a different content, and `onError` with the UserError (file and line) when a save breaks
 * it; the caller keeps the last good set meanwhile.
 *
 * It watches the file's directory rather than the file: editors save by writing a new file and
 * renaming it over the old one, which ends a watch on the old file. Events are debounced, and a
 * slow poll backs the watcher up where file-system events are not delivered (network mounts, some
 * container volumes).
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { UserError } from '../errors.js';
import { loadWorkersConfig, type WorkersConfig } from './workers.js';

export interface WorkersFileWatcher {
  close(): void;
}

export interface WatchOptions {
  onChange(config: WorkersConfig): void;
  onError(error: UserError): void;
  /** Debounce of file-system events. */
  debounceMs?: number;
  /** Poll interval when no event arrives. */
  pollMs?: number;
}

export function watchWorkersFile(
  file: string,
  initialText: string,
  options: WatchOptions,
): WorkersFileWatcher {
  const debounceMs = options.debounceMs ?? 150;
  const pollMs = options.pollMs ?? 5000;
  let lastText: string | undefined = initialText;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const check = async () => {
    timer = undefined;
    if (closed) return;
    let text: string | undefined;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      text = undefined; // loadWorkersConfig below names the problem
    }
    if (closed || text === lastText) return; // unchanged (a missing file is reported once)
    lastText = text;
    try {
      options.onChange(loadWorkersConfig(file));
    } catch (error) {
      if (error instanceof UserError) options.onError(error);
      else throw error;
    }
  };
  const schedule = () => {
    if (closed) return;
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => void check(), debounceMs);
  };

  const name = basename(file);
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(file), { persistent: false }, (_event, changed) => {
      if (changed === null || changed.toString() === name) schedule();
    });
    watcher.on('error', () => undefined); // the poll below carries on
  } catch {
    watcher = undefined;
  }
  const poll = setInterval(schedule, pollMs);
  poll.unref();

  return {
    close() {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      clearInterval(poll);
      watcher?.close();
    },
  };
}
