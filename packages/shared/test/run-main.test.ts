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

test('an error thrown outside main (a timer, a promise nobody awaited) is reported the same way', () => {
  const later = run(
    `setTimeout(() => { throw new Error('lost redis://admin:S3cr3t@h:1'); }, 10); await new Promise((r) => setTimeout(r, 1000));`,
  );
  expect(later.code).toBe(1);
  expect(later.stderr).toMatch(
    /^prog: unexpected failure\nError: lost redis:\/\/admin:\*\*\*@h:1\n/,
  );
  expect(later.stderr).not.toContain('S3cr3t');
  const rejected = run(
    `void Promise.reject(new UserError('bad mongodb://u:S3cr3t@h', 'fix it')); await new Promise((r) => setTimeout(r, 1000));`,
  );
  expect(rejected).toEqual({ code: 2, stderr: 'prog: bad mongodb://u:***@h. Fix: fix it\n' });
  const odd = run(
    `setTimeout(() => { throw Object.assign(Object.create(null), { n: 1n }); }, 10); await new Promise((r) => setTimeout(r, 1000));`,
  );
  expect(odd.code).toBe(1);
  expect(odd.stderr).toMatch(/^prog: unexpected failure\n\[object Object\]\n$/);
});
