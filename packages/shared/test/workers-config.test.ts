import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_WORKER_SETTINGS,
  formatUserError,
  loadWorkersConfig,
  parseWorkersConfig,
  UserError,
} from '../src/index.js';

const FILE = 'conf/workers.toml';

/** Parses `text`, expects a UserError and returns it with its one-line rendering. */
function failure(text: string): { error: UserError; line: string } {
  let caught: unknown;
  try {
    parseWorkersConfig(text, FILE);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(UserError);
  const error = caught as UserError;
  return { error, line: formatUserError(error) };
}

/** Every configuration error names the file, the line (when expected), the problem and a fix. */
function expectFailure(
  text: string,
  expected: { line: number | undefined; problem: RegExp; fix: RegExp },
): UserError {
  const { error, line } = failure(text);
  expect(error.file).toBe(FILE);
  expect(error.line).toBe(expected.line);
  expect(error.problem).toMatch(expected.problem);
  expect(error.fix).toMatch(expected.fix);
  const where = expected.line === undefined ? `${FILE}: ` : `${FILE}:${expected.line}: `;
  expect(line.startsWith(where)).toBe(true);
  expect(line).toContain(' Fix: ');
  expect(line).not.toContain('\n');
  return error;
}

describe('parseWorkersConfig: valid files', () => {
  it('reads a lower-case list with [defaults] and [worker.NAME] tables', () => {
    const config = parseWorkersConfig(
      `# comment
workers = ["charlie", "alpha", "bravo"]

[defaults]
concurrency = 8
attempts = 3
backoff_ms = 500
max_backoff_ms = 30_000
timeout_ms = 120000
dead_letter = "skip"

[worker.alpha]
concurrency = 2
dead_letter = "block"
`,
      FILE,
    );
    expect(config.file).toBe(FILE);
    expect(config.names).toEqual(['charlie', 'alpha', 'bravo']); // the order of the file
    expect(config.workers.map((w) => w.name)).toEqual(['charlie', 'alpha', 'bravo']);
    expect(config.get('charlie')).toEqual({
      name: 'charlie',
      concurrency: 8,
      attempts: 3,
      backoffMs: 500,
      maxBackoffMs: 30_000,
      timeoutMs: 120_000,
      deadLetter: 'skip',
    });
    expect(config.get('alpha')).toEqual({
      name: 'alpha',
      concurrency: 2,
      attempts: 3,
      backoffMs: 500,
      maxBackoffMs: 30_000,
      timeoutMs: 120_000,
      deadLetter: 'block',
    });
    expect(config.get('delta')).toBeUndefined();
    expect(Object.isFrozen(config.names)).toBe(true);
    expect(Object.isFrozen(config.get('alpha'))).toBe(true);
  });

  it("accepts gtm's format as it is", () => {
    const config = parseWorkersConfig('Workers = ["Tom", "Dick", "Harry"]\n', FILE);
    expect(config.names).toEqual(['Tom', 'Dick', 'Harry']);
    for (const worker of config.workers) {
      expect(worker).toEqual({ name: worker.name, ...DEFAULT_WORKER_SETTINGS });
    }
  });

  it('uses the documented defaults', () => {
    expect(DEFAULT_WORKER_SETTINGS).toEqual({
      concurrency: 4,
      attempts: 5,
      backoffMs: 1000,
      maxBackoffMs: 60000,
      timeoutMs: 60000,
      deadLetter: 'block',
    });
    expect(parseWorkersConfig('workers = ["a"]', FILE).get('a')).toEqual({
      name: 'a',
      ...DEFAULT_WORKER_SETTINGS,
    });
  });

  it('accepts other TOML spellings of the same tables: dotted keys, inline tables, literal strings', () => {
    const config = parseWorkersConfig(
      `workers = ['a-1', "b_2", """c"""]
defaults = { attempts = 9 }
worker.a-1.concurrency = 7
[worker."b_2"]
timeout_ms = 5
`,
      FILE,
    );
    expect(config.names).toEqual(['a-1', 'b_2', 'c']);
    expect(config.get('a-1')).toMatchObject({ concurrency: 7, attempts: 9 });
    expect(config.get('b_2')).toMatchObject({ timeoutMs: 5, attempts: 9 });
  });

  it('accepts a list over several lines with comments and a trailing comma, and a BOM', () => {
    const config = parseWorkersConfig('\ufeffworkers = [\n  "a", # first\n  "b",\n]\n', FILE);
    expect(config.names).toEqual(['a', 'b']);
  });

  it('accepts the limits of every range', () => {
    const config = parseWorkersConfig(
      `workers = ["a", "b"]
[worker.a]
concurrency = 1
attempts = 1
backoff_ms = 1
max_backoff_ms = 1
timeout_ms = 1
[worker.b]
concurrency = 1000
attempts = 100
backoff_ms = 2147483647
max_backoff_ms = 2147483647
timeout_ms = 2147483647
`,
      FILE,
    );
    expect(config.get('a')).toMatchObject({ concurrency: 1, attempts: 1, backoffMs: 1 });
    expect(config.get('b')).toMatchObject({
      concurrency: 1000,
      attempts: 100,
      maxBackoffMs: 2147483647,
    });
  });

  it('accepts names of 1 and 64 characters made of letters, digits, - and _', () => {
    const long = 'x'.repeat(64);
    const config = parseWorkersConfig(`workers = ["a", "${long}", "A-b_9"]`, FILE);
    expect(config.names).toEqual(['a', long, 'A-b_9']);
  });

  it("parses the repository's workers.toml", () => {
    const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
    const config = loadWorkersConfig(join(root, 'workers.toml'));
    expect(config.names.length).toBeGreaterThan(0);
  });
});

describe('parseWorkersConfig: malformed TOML (smol-toml must reject it)', () => {
  it('rejects a duplicate key instead of keeping the last value', () => {
    expectFailure('workers = ["a"]\nworkers = ["b"]\n', {
      line: 2,
      problem: /invalid TOML/,
      fix: /line 2/,
    });
  });

  it('rejects a duplicate key inside a table', () => {
    expectFailure('workers = ["a"]\n[defaults]\nattempts = 2\n\nattempts = 3\n', {
      line: 5,
      problem: /invalid TOML/,
      fix: /correct the syntax on line 5/,
    });
  });

  it('rejects a table defined twice', () => {
    expectFailure('workers = ["a"]\n[worker.a]\nattempts = 2\n[worker.a]\nconcurrency = 3\n', {
      line: 4,
      problem: /invalid TOML/,
      fix: /line 4/,
    });
  });

  it('rejects an unterminated string', () => {
    expectFailure('# names\nworkers = ["a", "b]\n', {
      line: 2,
      problem: /invalid TOML at column \d+/,
      fix: /toml\.io/,
    });
  });

  it('rejects an unterminated list and a missing value', () => {
    expect(failure('workers = ["a",\n\n').error.line).toBeGreaterThanOrEqual(1);
    expectFailure('workers = ["a"]\n[defaults]\nattempts =\n', {
      line: 3,
      problem: /invalid TOML/,
      fix: /line 3/,
    });
  });
});

describe('parseWorkersConfig: the list of names', () => {
  it('requires a list', () => {
    expectFailure('', { line: undefined, problem: /no list of worker names/, fix: /workers = \[/ });
    expectFailure('[defaults]\nconcurrency = 2\n', {
      line: undefined,
      problem: /no list of worker names/,
      fix: /before any \[table\]/,
    });
  });

  it('explains a list that is named worker', () => {
    expectFailure('\nworker = ["a"]\n', {
      line: 2,
      problem: /called worker/,
      fix: /rename worker = \[\.\.\.\] to workers/,
    });
  });

  it('rejects both spellings in one file', () => {
    expectFailure('workers = ["a"]\nWorkers = ["b"]\n', {
      line: 2,
      problem: /both workers and Workers/,
      fix: /keep one list/,
    });
  });

  it('rejects a list that is not a list', () => {
    expectFailure('workers = "alpha"\n', {
      line: 1,
      problem: /workers must be a list of worker names, not the string "alpha"/,
      fix: /workers = \["alpha"/,
    });
    expectFailure('x = 1\n[workers]\nalpha = 1\n', {
      line: 1,
      problem: /unknown key x in the top level/,
      fix: /allowed keys are workers, defaults, worker/,
    });
    expectFailure('[workers]\nalpha = 1\n', {
      line: 1,
      problem: /workers must be a list of worker names, not a table/,
      fix: /\[worker\.NAME\]/,
    });
  });

  it('rejects an empty list', () => {
    expectFailure('# none yet\nWorkers = []\n', {
      line: 2,
      problem: /the list Workers is empty/,
      fix: /at least one worker/,
    });
  });

  it('rejects a name that is not a string, on its own line', () => {
    expectFailure('workers = [\n  "a",\n  42,\n]\n', {
      line: 3,
      problem: /worker name number 2 in workers is the integer 42, not a string/,
      fix: /quote the name/,
    });
    expectFailure('workers = ["a", ["b"]]\n', {
      line: 1,
      problem: /number 2 .* a list, not a string/,
      fix: /quote/,
    });
  });

  it.each([
    ['has space', /characters other than letters, digits/],
    ['a.dead', /characters other than/],
    ['ünï', /characters other than/],
    ['', /it is empty/],
    ['x'.repeat(65), /it has 65 characters/],
  ])('rejects the illegal name %j', (name, reason) => {
    const error = expectFailure(`workers = [\n  "ok",\n  ${JSON.stringify(name)},\n]\n`, {
      line: 3,
      problem: reason,
      fix: /1 to 64 letters, digits, "-" or "_"/,
    });
    expect(error.problem).toContain(JSON.stringify(name));
  });

  it('rejects a duplicate name and names both lines', () => {
    expectFailure('workers = [\n  "a",\n  "b",\n  "a",\n]\n', {
      line: 4,
      problem: /duplicate worker name "a" \(lines 2 and 4\)/,
      fix: /list each worker once/,
    });
    expectFailure('\nWorkers = ["Tom", "Dick", "Tom"]\n', {
      line: 2,
      problem: /duplicate worker name "Tom" \(twice on line 2\)/,
      fix: /delete the second "Tom"/,
    });
  });

  it('finds the lines of list elements past comments and brackets in comments', () => {
    expectFailure(
      '# workers = ["zz"] was the old list\nworkers = [ # the ] list\n  "a", "b",\n  "a",\n]\n',
      {
        line: 4,
        problem: /duplicate worker name "a" \(lines 3 and 4\)/,
        fix: /list each worker once/,
      },
    );
  });

  it('treats names as case-sensitive (they are distinct queues)', () => {
    expect(parseWorkersConfig('workers = ["tom", "Tom"]', FILE).names).toEqual(['tom', 'Tom']);
  });
});

describe('parseWorkersConfig: tables and keys', () => {
  it('rejects a [worker.NAME] table for a name that is not in the list', () => {
    expectFailure('workers = ["alpha", "bravo"]\n\n[worker.alpah]\nconcurrency = 2\n', {
      line: 3,
      problem: /\[worker\.alpah\] configures a worker that is not in the list workers/,
      fix: /did you mean \[worker\.alpha\]/,
    });
    expectFailure('Workers = ["Tom"]\n[worker.zed]\n', {
      line: 2,
      problem: /\[worker\.zed\]/,
      fix: /add "zed" to Workers, or delete the table; the workers are Tom/,
    });
  });

  it('rejects a typo in a [defaults] key and suggests the right key', () => {
    const error = expectFailure('workers = ["a"]\n[defaults]\nconcurency = 8\n', {
      line: 3,
      problem: /unknown key concurency in \[defaults\]/,
      fix: /did you mean concurrency\?/,
    });
    expect(error.fix).toContain(
      'concurrency, attempts, backoff_ms, max_backoff_ms, timeout_ms, dead_letter',
    );
  });

  it('rejects camelCase keys and names the snake_case spelling', () => {
    expectFailure('workers = ["a"]\n[worker.a]\nattempts = 2\nbackoffMs = 10\n', {
      line: 4,
      problem: /unknown key backoffMs in \[worker\.a\]/,
      fix: /did you mean backoff_ms\?/,
    });
    expectFailure('workers = ["a"]\n[defaults]\ndeadLetter = "skip"\n', {
      line: 3,
      problem: /deadLetter/,
      fix: /did you mean dead_letter\?/,
    });
  });

  it('rejects unknown keys without a close match, listing the allowed ones', () => {
    expectFailure('workers = ["a"]\n[worker.a]\nqueue = "x"\n', {
      line: 3,
      problem: /unknown key queue in \[worker\.a\]/,
      fix: /remove it; the allowed keys are concurrency, attempts/,
    });
    expectFailure('workers = ["a"]\nredis = "x"\n', {
      line: 2,
      problem: /unknown key redis in the top level/,
      fix: /remove it; the allowed keys are workers, defaults, worker/,
    });
    expectFailure('workerz = ["a"]\n', {
      line: 1,
      problem: /unknown key workerz/,
      fix: /did you mean workers\?/,
    });
    expectFailure('workers = ["a"]\ndefaults.timeout = 5\n', {
      line: 2,
      problem: /unknown key timeout in \[defaults\]/,
      fix: /timeout_ms/,
    });
  });

  it('rejects tables that are not tables', () => {
    expectFailure('workers = ["a"]\ndefaults = 5\n', {
      line: 2,
      problem: /defaults must be a table, not the integer 5/,
      fix: /\[defaults\] header/,
    });
    expectFailure('workers = ["a"]\nworker = "a"\n', {
      line: 2,
      problem: /worker must be a table of per-worker tables, not the string "a"/,
      fix: /\[worker\.NAME\]/,
    });
    expectFailure('workers = ["a"]\nworker.a = 3\n', {
      line: 2,
      problem: /worker\.a must be a table of settings, not the integer 3/,
      fix: /\[worker\.a\] header/,
    });
  });
});

describe('parseWorkersConfig: values', () => {
  const settings = (body: string) => `workers = ["a"]\n[worker.a]\n${body}\n`;

  it.each([
    ['concurrency = 0', /concurrency in \[worker\.a\] is 0, outside the allowed range 1\.\.1000/],
    ['concurrency = 1001', /is 1001, outside the allowed range 1\.\.1000/],
    ['attempts = 0', /attempts .* outside the allowed range 1\.\.100$/],
    ['attempts = 101', /attempts .* is 101/],
    ['backoff_ms = 0', /backoff_ms .* range 1\.\.2147483647 ms/],
    ['timeout_ms = -5', /timeout_ms .* is -5/],
    ['max_backoff_ms = 2147483648', /max_backoff_ms .* is 2147483648/],
    ['timeout_ms = 9223372036854775807', /is 9223372036854775807/],
  ])('rejects the out-of-range value %s', (line, problem) => {
    expectFailure(settings(line), { line: 3, problem, fix: /set \w+ to a value from 1 to \d+/ });
  });

  it.each([
    ['concurrency = "4"', /concurrency .* must be an integer in 1\.\.1000, not the string "4"/],
    ['attempts = true', /must be an integer .* not the boolean true/],
    ['timeout_ms = 1.5', /timeout_ms .* not the float 1\.5/],
    ['backoff_ms = [1]', /not a list/],
    ['timeout_ms = 1979-05-27', /not the date/],
  ])('rejects the wrongly typed value %s', (line, problem) => {
    expectFailure(settings(line), { line: 3, problem, fix: /write a whole number, for example/ });
  });

  it('rejects a float that holds a whole number, naming the integer spelling', () => {
    expectFailure(settings('concurrency = 4.0'), {
      line: 3,
      problem: /concurrency in \[worker\.a\] is a float \(4\.0\), not an integer/,
      fix: /concurrency = 4$/,
    });
  });

  it.each([
    [
      'concurrency = 1e9',
      /is a float \(1000000000\.0\), not an integer, and outside the allowed range 1\.\.1000/,
      /from 1 to 1000, e\.g\. concurrency = 1000$/,
    ],
    [
      'concurrency = -2.0',
      /is a float \(-2\.0\), not an integer, and outside/,
      /e\.g\. concurrency = 1$/,
    ],
    ['timeout_ms = 1e300', /is a float \(1e\+300\)/, /e\.g\. timeout_ms = 2147483647$/],
  ])(
    'rejects the out-of-range whole float %s with an in-range fix (issue 12)',
    (line, problem, fix) => {
      expectFailure(settings(line), { line: 3, problem, fix });
    },
  );

  it('rejects an unknown dead_letter policy', () => {
    expectFailure(settings('dead_letter = "drop"'), {
      line: 3,
      problem: /dead_letter in \[worker\.a\] must be "block" or "skip", not the string "drop"/,
      fix: /dead_letter = "block" .* dead_letter = "skip"/,
    });
    expectFailure(settings('dead_letter = 1'), {
      line: 3,
      problem: /not the integer 1/,
      fix: /"skip"/,
    });
  });

  it('rejects max_backoff_ms below backoff_ms within one table', () => {
    expectFailure(settings('backoff_ms = 5000\nmax_backoff_ms = 4000'), {
      line: 4,
      problem:
        /worker "a": max_backoff_ms \(4000, from \[worker\.a\]\) is less than backoff_ms \(5000, from \[worker\.a\]\)/,
      fix: /raise max_backoff_ms to at least 5000 or lower backoff_ms/,
    });
  });

  it('rejects max_backoff_ms below backoff_ms across [defaults], a worker table and the built-in default', () => {
    expectFailure(
      'workers = ["a", "b"]\n[defaults]\nbackoff_ms = 90000\n[worker.a]\nmax_backoff_ms = 100000\n',
      {
        line: 3,
        problem:
          /worker "b": max_backoff_ms \(60000, from the built-in default\) is less than backoff_ms \(90000, from \[defaults\]\)/,
        fix: /at least 90000/,
      },
    );
    expectFailure(
      'workers = ["a"]\n[defaults]\nmax_backoff_ms = 10\n[worker.a]\nbackoff_ms = 20\n',
      {
        line: 5,
        problem:
          /max_backoff_ms \(10, from \[defaults\]\) is less than backoff_ms \(20, from \[worker\.a\]\)/,
        fix: /at least 20/,
      },
    );
  });
});

describe('loadWorkersConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'changeq-workers-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a file and keeps its path for messages', () => {
    const file = join(dir, 'ok.toml');
    writeFileSync(file, 'workers = ["a", "b"]\n');
    const config = loadWorkersConfig(file);
    expect(config.file).toBe(file);
    expect(config.names).toEqual(['a', 'b']);
  });

  it('reports errors with the path of the file', () => {
    const file = join(dir, 'bad.toml');
    writeFileSync(file, 'workers = ["a"]\n[defaults]\nconcurency = 1\n');
    expect(() => loadWorkersConfig(file)).toThrow(UserError);
    try {
      loadWorkersConfig(file);
    } catch (error) {
      expect(formatUserError(error as UserError)).toMatch(
        new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: unknown key concurency`),
      );
    }
  });

  it('names the missing file, its absolute path and the fix', () => {
    const missing = join(dir, 'missing.toml');
    let caught: unknown;
    try {
      loadWorkersConfig(missing);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(UserError);
    const error = caught as UserError;
    expect(error.file).toBe(missing);
    expect(error.problem).toBe(`the workers file ${missing} does not exist`);
    expect(error.fix).toMatch(/^create .*missing\.toml with a list of worker names/);
  });

  it('shows the absolute path of a relative one', () => {
    let caught: unknown;
    try {
      loadWorkersConfig('no-such-dir/workers.toml');
    } catch (error) {
      caught = error;
    }
    expect((caught as UserError).problem).toMatch(
      /^the workers file no-such-dir\/workers\.toml \(\/.*no-such-dir\/workers\.toml\) does not exist$/,
    );
  });

  it('reports a directory', () => {
    expect(() => loadWorkersConfig(dir)).toThrow(/is a directory/);
  });
});
