/** runMain, in a real process: the one line of a user error, the stack of anything else. */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

const DIST = fileURLToPath(new URL('../dist/index.js', import.meta.url));

function run(body: string) {
  const script = `import { runMain, UserError } from ${JSON.stringify(DIST)};\nrunMain('prog', async () => { ${body} });`;
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
  });
  return { code: result.status, stderr: result.stderr };
}

test('a user error is one line, exit 2; anything else its stack, exit 1; no password in either', () => {
  const user = run(
    `throw new UserError('cannot use redis://admin:2024/S3cr3t@h:1 today', 'try mongodb://u:p@ss/S3cr3t@h')`,
  );
  expect(user).toEqual({
    code: 2,
    stderr: 'prog: cannot use redis://admin:***@h:1 today. Fix: try mongodb://u:***@h\n',
  });
  const crash = run(`throw new TypeError('bad input redis://:S3cr3t@h:1')`);
  expect(crash.code).toBe(1);
  expect(crash.stderr).toMatch(
    /^prog: unexpected failure\nTypeError: bad input redis:\/\/:\*\*\*@h:1\n\s+at /,
  );
  expect(crash.stderr).not.toContain('S3cr3t');
});
