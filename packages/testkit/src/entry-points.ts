import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNode, type StartOptions, type TestProcess } from './processes.js';

/** The repository's root folder (this file is packages/testkit/{src,dist}/entry-points.*). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export type App = 'ingest' | 'worker' | 'board' | 'cli' | 'demo';

/**
 * The built entry point of an app (apps/<app>/dist/main.js), which tests start as a process: a
 * path, never an import, so no package depends on an app.
 */
export function appMain(app: App): string {
  const main = join(REPO_ROOT, 'apps', app, 'dist', 'main.js');
  if (!existsSync(main)) {
    throw new Error(
      `${main} is missing: build it first (npx turbo run build --filter=@changeq/${app})`,
    );
  }
  return main;
}

/** Starts the built app as a real process, logging JSON lines (what tests read). */
export function startApp(
  app: App,
  args: readonly string[] = [],
  env: NodeJS.ProcessEnv = {},
  options: Omit<StartOptions, 'env'> = {},
): TestProcess {
  // An ingest killed by a test is started again and waits out its predecessor's lease (see
  // docs/scaling.md): tests use a short one (2 s; the default is 10 s) unless they set their own.
  const defaults = app === 'ingest' ? { INGEST_LEASE_TTL_MS: '2000' } : {};
  return startNode(appMain(app), args, {
    ...options,
    env: { LOG_FORMAT: 'json', ...defaults, ...env },
  });
}
