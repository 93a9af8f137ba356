import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh, empty folder under the system's temporary folder. */
export function tempDir(prefix = 'changeq-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Writes `text` as workers.toml in a fresh folder and returns its path. */
export function workersFile(text: string): string {
  const file = join(tempDir('changeq-workers-'), 'workers.toml');
  writeFileSync(file, text);
  return file;
}
