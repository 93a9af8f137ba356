import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  UserError,
  validateHandlerTable,
  type ChangeEvent,
  type EventHandler,
  type HandlerContext,
  type HandlerTable,
} from '@changeq/shared';
import { resolveHandler } from './resolve.js';

/** Calls the right handler for an event; `matched` is false when the event is a no-op. */
export type Dispatch = (
  event: ChangeEvent,
  ctx: HandlerContext,
) => { matched: false } | { matched: true; result: unknown };

export interface LoadedHandlers {
  file: string;
  dispatch: Dispatch;
  /** Called on shutdown when the module exports `close` (to end its database connections). */
  close: () => Promise<void>;
}

export function dispatcherFor(exported: EventHandler | HandlerTable): Dispatch {
  if (typeof exported === 'function') {
    return (event, ctx) => ({ matched: true, result: exported(event, ctx) });
  }
  return (event, ctx) => {
    const found = resolveHandler(exported, event);
    if (found === undefined) return { matched: false };
    return { matched: true, result: found.handler(event, ctx) };
  };
}

/**
 * Imports a handlers module. Its default export is a handler function or a handler table; it may
 * also export `close()`, called on shutdown. Every problem is a UserError naming the file.
 */
export async function loadHandlers(path: string): Promise<LoadedHandlers> {
  const file = isAbsolute(path) ? path : resolve(process.cwd(), path);
  const fix =
    'point --handlers (or HANDLERS) at a JavaScript module whose default export is a handler function or a defineHandlers({...}) table';
  if (!existsSync(file)) {
    throw new UserError(`the handlers module ${file} does not exist`, fix);
  }
  let mod: Record<string, unknown>;
  try {
    mod = await importOrNever(file, fix);
  } catch (error) {
    if (error instanceof UserError) throw error;
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new UserError(
      `the handlers module ${file} could not be loaded: ${reason}`,
      `fix the module (\`node ${file}\` shows the full error), or ${fix}`,
    );
  }
  const exported = mod.default;
  if (typeof exported !== 'function') {
    try {
      validateHandlerTable(exported);
    } catch (error) {
      const reason = exported === undefined ? 'it has no default export' : (error as Error).message;
      throw new UserError(`the handlers module ${file} is not usable: ${reason}`, fix);
    }
  }
  const close = typeof mod.close === 'function' ? (mod.close as () => unknown) : undefined;
  return {
    file,
    dispatch: dispatcherFor(exported as EventHandler | HandlerTable),
    close: async () => {
      if (close) await close();
    },
  };
}

/**
 * Imports the module, failing when its loading can never finish: a top-level `await` on
 * something that nothing will ever settle leaves Node with no work, and the process would exit
 * with code 0 in silence. `beforeExit` fires exactly then (the event loop is empty).
 */
async function importOrNever(file: string, fix: string): Promise<Record<string, unknown>> {
  const loading = import(pathToFileURL(file).href) as Promise<Record<string, unknown>>;
  let onBeforeExit: (() => void) | undefined;
  const never = new Promise<never>((_, reject) => {
    onBeforeExit = () =>
      reject(
        new UserError(
          `the handlers module ${file} never finished loading: a top-level await in it (or in a module it imports) waits for something that nothing can settle any more`,
          `make every top-level await settle (or move the waiting into a handler), or ${fix}`,
        ),
      );
    process.once('beforeExit', onBeforeExit);
  });
  try {
    return await Promise.race([loading, never]);
  } finally {
    if (onBeforeExit) process.off('beforeExit', onBeforeExit);
  }
}
