/**
 * `workers.toml`: the worker names that changeq routes change events to, and their settings.
 *
 * ```toml
 * # Each name is one BullMQ queue. Every event of one document goes to the same name.
 * workers = ["alpha", "bravo", "charlie"]   # gtm's spelling `Workers = [...]` works too
 *
 * [defaults]                 # optional, applies to every worker
 * concurrency = 8            # jobs of distinct documents run in parallel (1..1000)
 * attempts = 5               # tries per job before it becomes a dead letter (1..100)
 * backoff_ms = 1000          # first retry delay, doubled per attempt ...
 * max_backoff_ms = 60000     # ... up to this (>= backoff_ms)
 * timeout_ms = 60000         # a handler running longer than this fails the attempt
 * dead_letter = "block"      # "block": later events of the document wait; "skip": they go on
 *
 * [worker.charlie]           # optional, overrides [defaults] for one worker
 * concurrency = 4
 *
 * [routing]                  # optional: what orders a namespace's events (default "document")
 * "shop.orders" = "fullDocument.customerId"   # every order of one customer, in order
 * "shop.audit" = "namespace"                  # the whole namespace, in order
 * ```
 *
 * Keys are snake_case only, the usual TOML style (Cargo, pyproject, Netlify...). A camelCase
 * spelling such as `backoffMs` is rejected with a hint naming the snake_case key, rather than
 * accepted as a second spelling: one spelling per setting keeps files greppable and makes a
 * file that mixes both impossible. Every unknown key is an error, so a typo such as `concurency`
 * cannot silently fall back to the default. Integers must be written as TOML integers (`4`, not
 * `4.0`). Durations are whole milliseconds up to 2147483647 (about 24.8 days), the longest delay
 * Node's timers support.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { UserError } from '../errors.js';
import { TomlLocations } from './toml-locations.js';
import { parseRoutingRule, type RoutingRule } from '../routing/routing-key.js';

export type DeadLetterPolicy = 'block' | 'skip';

export interface WorkerSettings {
  /** How many jobs (of distinct documents) one worker process runs at once. */
  concurrency: number;
  /** How many times a job is tried before it becomes a dead letter. */
  attempts: number;
  /** Delay before the first retry; doubles per attempt. */
  backoffMs: number;
  /** Upper bound of the retry delay. */
  maxBackoffMs: number;
  /** A handler still running after this long fails the attempt. */
  timeoutMs: number;
  /** What happens to later events of a document whose event became a dead letter. */
  deadLetter: DeadLetterPolicy;
}

export const DEFAULT_WORKER_SETTINGS: WorkerSettings = Object.freeze({
  concurrency: 4,
  attempts: 5,
  backoffMs: 1000,
  maxBackoffMs: 60_000,
  timeoutMs: 60_000,
  deadLetter: 'block',
});

export interface WorkerSpec extends WorkerSettings {
  name: string;
}

export interface WorkersConfig {
  /** The file the configuration was read from (as given). */
  file: string;
  /** The worker names, in the order of the file. */
  names: readonly string[];
  /** The workers with their effective settings, in the order of the file. */
  workers: readonly WorkerSpec[];
  get(name: string): WorkerSpec | undefined;
  /** `[routing]`: the namespaces not ordered by document, with their rule. */
  routing: ReadonlyMap<string, RoutingRule>;
}

/** Worker names become BullMQ queue names and parts of Redis keys. */
export const WORKER_NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** The longest delay Node's timers accept (2^31 - 1 ms). */
const MAX_DURATION_MS = 2_147_483_647;

interface IntSetting {
  key: string;
  prop: Exclude<keyof WorkerSettings, 'deadLetter'>;
  min: number;
  max: number;
  unit: string;
}

const INT_SETTINGS: readonly IntSetting[] = [
  { key: 'concurrency', prop: 'concurrency', min: 1, max: 1000, unit: '' },
  { key: 'attempts', prop: 'attempts', min: 1, max: 100, unit: '' },
  { key: 'backoff_ms', prop: 'backoffMs', min: 1, max: MAX_DURATION_MS, unit: ' ms' },
  { key: 'max_backoff_ms', prop: 'maxBackoffMs', min: 1, max: MAX_DURATION_MS, unit: ' ms' },
  { key: 'timeout_ms', prop: 'timeoutMs', min: 1, max: MAX_DURATION_MS, unit: ' ms' },
];
const DEAD_LETTER_KEY = 'dead_letter';
const DEAD_LETTER_VALUES: readonly DeadLetterPolicy[] = ['block', 'skip'];
const SETTING_KEYS: readonly string[] = [...INT_SETTINGS.map((s) => s.key), DEAD_LETTER_KEY];
const TOP_LEVEL_KEYS: readonly string[] = ['workers', 'defaults', 'worker', 'routing'];

const EXAMPLE_LIST = 'workers = ["alpha", "bravo", "charlie"]';

type Table = Record<string, unknown>;

function isTable(value: unknown): value is Table {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !isDate(value);
}

function isDate(value: unknown): boolean {
  // smol-toml returns TomlDate (a Date subclass) for dates and times.
  return value instanceof Date;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  if (typeof value === 'bigint') return `the integer ${value}`;
  if (typeof value === 'number') return `the float ${String(value)}`;
  if (typeof value === 'boolean') return `the boolean ${String(value)}`;
  if (Array.isArray(value)) return 'a list';
  if (isDate(value)) return `the date ${String(value)}`;
  if (isTable(value)) return 'a table';
  return String(value);
}

function tomlKey(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key);
}

/** Edit distance counting insertions, deletions, substitutions and swaps of neighbours. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number) => d[i]?.[j] ?? Infinity;
  for (let i = 1; i <= a.length; i++) {
    const row = d[i] ?? [];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, at(i - 2, j - 2) + 1);
      }
      row[j] = best;
    }
  }
  return at(a.length, b.length);
}

function snakeCase(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

/** "did you mean ..." for a mistyped key, or undefined. */
function suggest(key: string, allowed: readonly string[]): string | undefined {
  const snake = snakeCase(key);
  if (snake !== key && allowed.includes(snake)) return snake;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of allowed) {
    const distance = editDistance(key.toLowerCase(), candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= Math.max(1, Math.floor(key.length / 4)) && bestDistance < key.length
    ? best
    : undefined;
}

class WorkersFile {
  readonly locations: TomlLocations;

  constructor(
    readonly file: string,
    text: string,
  ) {
    this.locations = new TomlLocations(text);
  }

  fail(problem: string, fix: string, path?: readonly string[], line?: number): never {
    const where = line ?? (path === undefined ? undefined : this.locations.lineOf(path));
    throw new UserError(
      problem,
      fix,
      where === undefined ? { file: this.file } : { file: this.file, line: where },
    );
  }

  rejectUnknownKeys(
    table: Table,
    allowed: readonly string[],
    path: readonly string[],
    what: string,
  ): void {
    for (const key of Object.keys(table)) {
      if (allowed.includes(key)) continue;
      const hint = suggest(key, allowed);
      const keyPath = [...path, key];
      this.fail(
        `unknown key ${tomlKey(key)} in ${what}`,
        `${hint === undefined ? 'remove it' : `did you mean ${hint}? Rename it`}; the allowed keys are ${allowed.join(', ')}`,
        keyPath,
      );
    }
  }
}

interface SettingsLayer {
  values: Partial<WorkerSettings>;
  /** Line of each key that was set in this layer. */
  lines: Partial<Record<keyof WorkerSettings, number>>;
  /** How to name the layer in messages: `[defaults]` or `[worker.charlie]`. */
  label: string;
}

function readSettings(
  f: WorkersFile,
  table: Table,
  path: readonly string[],
  label: string,
): SettingsLayer {
  f.rejectUnknownKeys(table, SETTING_KEYS, path, label);
  const layer: SettingsLayer = { values: {}, lines: {}, label };
  for (const setting of INT_SETTINGS) {
    if (!(setting.key in table)) continue;
    const value = table[setting.key];
    const keyPath = [...path, setting.key];
    const range = `${setting.min}..${setting.max}${setting.unit}`;
    if (typeof value === 'number' && Number.isInteger(value)) {
      // A whole float (4.0, 1e9): suggest the integer only when it is allowed.
      const float = /e/i.test(String(value)) ? String(value) : `${String(value)}.0`;
      if (value >= setting.min && value <= setting.max) {
        f.fail(
          `${setting.key} in ${label} is a float (${float}), not an integer`,
          `write it as an integer, without a decimal point or exponent: ${setting.key} = ${String(value)}`,
          keyPath,
        );
      }
      const nearest = value < setting.min ? setting.min : setting.max;
      f.fail(
        `${setting.key} in ${label} is a float (${float}), not an integer, and outside the allowed range ${range}`,
        `set ${setting.key} to a whole number from ${setting.min} to ${setting.max}, e.g. ${setting.key} = ${nearest}`,
        keyPath,
      );
    }
    if (typeof value !== 'bigint') {
      f.fail(
        `${setting.key} in ${label} must be an integer in ${range}, not ${describe(value)}`,
        `write a whole number, for example ${setting.key} = ${DEFAULT_WORKER_SETTINGS[setting.prop]}`,
        keyPath,
      );
    }
    if (value < BigInt(setting.min) || value > BigInt(setting.max)) {
      f.fail(
        `${setting.key} in ${label} is ${value}, outside the allowed range ${range}`,
        `set ${setting.key} to a value from ${setting.min} to ${setting.max}`,
        keyPath,
      );
    }
    layer.values[setting.prop] = Number(value);
    layer.lines[setting.prop] = f.locations.lineOf(keyPath);
  }
  if (DEAD_LETTER_KEY in table) {
    const value = table[DEAD_LETTER_KEY];
    const keyPath = [...path, DEAD_LETTER_KEY];
    if (typeof value !== 'string' || !(DEAD_LETTER_VALUES as readonly string[]).includes(value)) {
      f.fail(
        `${DEAD_LETTER_KEY} in ${label} must be "block" or "skip", not ${describe(value)}`,
        `write ${DEAD_LETTER_KEY} = "block" (later events of the document wait for the dead letter to be resolved) or ${DEAD_LETTER_KEY} = "skip" (they go on)`,
        keyPath,
      );
    }
    layer.values.deadLetter = value as DeadLetterPolicy;
    layer.lines.deadLetter = f.locations.lineOf(keyPath);
  }
  return layer;
}

/** `[routing]`: `"db.coll" = "document" | "namespace" | "fullDocument.<path>" | "documentKey.<field>"`. */
function readRouting(f: WorkersFile, doc: Table): ReadonlyMap<string, RoutingRule> {
  const rules = new Map<string, RoutingRule>();
  if (!('routing' in doc)) return rules;
  const table = doc.routing;
  const example = '"shop.orders" = "fullDocument.customerId"';
  if (!isTable(table)) {
    f.fail(
      `routing must be a table, not ${describe(table)}`,
      `write one namespace per line under a [routing] header, e.g. ${example}`,
      ['routing'],
    );
  }
  for (const [ns, value] of Object.entries(table)) {
    const path = ['routing', ns];
    const dot = ns.indexOf('.');
    if (dot <= 0 || dot === ns.length - 1 || ns.includes('\0')) {
      f.fail(
        `[routing] key ${tomlKey(ns)} is not a namespace (db.collection)`,
        `quote the namespace, e.g. ${example}`,
        path,
      );
    }
    if (typeof value !== 'string') {
      f.fail(
        `[routing] ${tomlKey(ns)} must be a string, not ${describe(value)}`,
        `write "document", "namespace" or a field path, e.g. ${example}`,
        path,
      );
    }
    try {
      const rule = parseRoutingRule(value);
      if (rule.kind !== 'document') rules.set(ns, rule);
    } catch (error) {
      f.fail(
        `[routing] ${tomlKey(ns)}: ${(error as Error).message}`,
        `e.g. ${example}`,
        path,
      );
    }
  }
  return rules;
}

/** Parses the text of a workers.toml file; `file` is only used in messages. Throws UserError. */
export function parseWorkersConfig(text: string, file: string): WorkersConfig {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // a BOM left by some Windows editors
  let doc: Table;
  try {
    doc = parse(text, { integersAsBigInt: true }) as Table;
  } catch (error) {
    if (error instanceof TomlError) {
      const reason = (error.message.split('\n')[0] ?? '')
        .replace(/^Invalid TOML document:\s*/, '')
        .replace(/\.$/, '');
      throw new UserError(
        `invalid TOML at column ${error.column}: ${reason}`,
        `correct the syntax on line ${error.line} (see https://toml.io for the format); ${EXAMPLE_LIST} is a minimal valid file`,
        { file, line: error.line },
      );
    }
    throw error;
  }
  const f: WorkersFile = new WorkersFile(file, text);

  // The list of names: `workers` or gtm's `Workers`, not both.
  const listKeys = ['workers', 'Workers'].filter((key) => key in doc);
  if (listKeys.length === 2) {
    f.fail(
      'both workers and Workers are set',
      "keep one list of names (workers = [...] or gtm's Workers = [...]) and delete the other",
      ['Workers'],
    );
  }
  f.rejectUnknownKeys(
    Object.fromEntries(Object.entries(doc).filter(([key]) => key !== 'Workers')),
    TOP_LEVEL_KEYS,
    [],
    'the top level',
  );
  const listKey = listKeys[0];
  if (listKey === undefined) {
    if (Array.isArray(doc.worker)) {
      f.fail(
        'the list of worker names is called worker; it must be workers',
        'rename worker = [...] to workers = [...] ([worker.NAME] tables hold per-worker settings)',
        ['worker'],
      );
    }
    f.fail(
      'no list of worker names',
      `add a line such as ${EXAMPLE_LIST} at the top of the file (before any [table])`,
    );
  }

  const list = doc[listKey];
  if (!Array.isArray(list)) {
    f.fail(
      `${listKey} must be a list of worker names, not ${describe(list)}`,
      `write it as ${EXAMPLE_LIST}; settings of one worker go in a [worker.NAME] table`,
      [listKey],
    );
  }
  if (list.length === 0) {
    f.fail(
      `the list ${listKey} is empty`,
      `name at least one worker, for example ${EXAMPLE_LIST}`,
      [listKey],
    );
  }
  const elementLines = f.locations.elementLinesOf([listKey]);
  const firstLine = new Map<string, number | undefined>();
  const names: string[] = [];
  list.forEach((name: unknown, index) => {
    const line = elementLines[index] ?? f.locations.lineOf([listKey]);
    if (typeof name !== 'string') {
      f.fail(
        `worker name number ${index + 1} in ${listKey} is ${describe(name)}, not a string`,
        `quote the name, for example "worker-${index + 1}"`,
        undefined,
        line,
      );
    }
    if (!WORKER_NAME_PATTERN.test(name)) {
      f.fail(
        `worker name ${JSON.stringify(name)} is not allowed: ${name.length === 0 ? 'it is empty' : name.length > 64 ? `it has ${name.length} characters` : 'it contains characters other than letters, digits, - and _'}`,
        'use 1 to 64 letters, digits, "-" or "_" (the name becomes a BullMQ queue name and part of Redis keys)',
        undefined,
        line,
      );
    }
    if (firstLine.has(name)) {
      const before = firstLine.get(name);
      const lines =
        before === undefined || line === undefined
          ? ''
          : before === line
            ? ` (twice on line ${line})`
            : ` (lines ${before} and ${line})`;
      f.fail(
        `duplicate worker name ${JSON.stringify(name)}${lines}`,
        `list each worker once; delete the second ${JSON.stringify(name)} or rename it`,
        undefined,
        line,
      );
    }
    firstLine.set(name, line);
    names.push(name);
  });

  // [defaults]
  let defaults: SettingsLayer = { values: {}, lines: {}, label: '[defaults]' };
  if ('defaults' in doc) {
    const table = doc.defaults;
    if (!isTable(table)) {
      f.fail(
        `defaults must be a table, not ${describe(table)}`,
        'write the settings under a [defaults] header, one key = value per line',
        ['defaults'],
      );
    }
    defaults = readSettings(f, table, ['defaults'], '[defaults]');
  }

  // [worker.NAME]
  const layers = new Map<string, SettingsLayer>();
  if ('worker' in doc) {
    const tables = doc.worker;
    if (!isTable(tables)) {
      f.fail(
        `worker must be a table of per-worker tables, not ${describe(tables)}`,
        'write the settings of one worker under a [worker.NAME] header',
        ['worker'],
      );
    }
    for (const [name, table] of Object.entries(tables)) {
      const label = `[worker.${tomlKey(name)}]`;
      if (!names.includes(name)) {
        const hint = suggest(name, names);
        f.fail(
          `${label} configures a worker that is not in the list ${listKey}`,
          hint === undefined
            ? `add ${JSON.stringify(name)} to ${listKey}, or delete the table; the workers are ${names.join(', ')}`
            : `did you mean [worker.${hint}]? Otherwise add ${JSON.stringify(name)} to ${listKey} or delete the table`,
          ['worker', name],
        );
      }
      if (!isTable(table)) {
        f.fail(
          `worker.${tomlKey(name)} must be a table of settings, not ${describe(table)}`,
          `write the settings under a ${label} header, one key = value per line`,
          ['worker', name],
        );
      }
      layers.set(name, readSettings(f, table, ['worker', name], label));
    }
  }

  const workers = names.map((name) => {
    const own = layers.get(name);
    const spec: WorkerSpec = {
      name,
      ...DEFAULT_WORKER_SETTINGS,
      ...defaults.values,
      ...own?.values,
    };
    if (spec.maxBackoffMs < spec.backoffMs) {
      const origin = (prop: 'backoffMs' | 'maxBackoffMs') => {
        const layer =
          own?.values[prop] !== undefined
            ? own
            : defaults.values[prop] !== undefined
              ? defaults
              : undefined;
        return layer === undefined
          ? { text: 'the built-in default', line: undefined }
          : { text: layer.label, line: layer.lines[prop] };
      };
      const low = origin('maxBackoffMs');
      const high = origin('backoffMs');
      f.fail(
        `worker ${JSON.stringify(name)}: max_backoff_ms (${spec.maxBackoffMs}, from ${low.text}) is less than backoff_ms (${spec.backoffMs}, from ${high.text})`,
        `raise max_backoff_ms to at least ${spec.backoffMs} or lower backoff_ms`,
        undefined,
        own?.lines.maxBackoffMs ?? own?.lines.backoffMs ?? low.line ?? high.line,
      );
    }
    return Object.freeze(spec);
  });

  const byName = new Map(workers.map((worker) => [worker.name, worker]));
  return Object.freeze({
    file,
    names: Object.freeze(names),
    workers: Object.freeze(workers),
    get: (name: string) => byName.get(name),
    routing: readRouting(f, doc),
  });
}

/** Reads and parses a workers.toml file. A missing or unreadable file is a UserError. */
export function loadWorkersConfig(file: string): WorkersConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const absolute = resolve(file);
    const shown = absolute === file ? file : `${file} (${absolute})`;
    const problem =
      code === 'ENOENT'
        ? `the workers file ${shown} does not exist`
        : code === 'EISDIR'
          ? `the workers file ${shown} is a directory`
          : code === 'EACCES' || code === 'EPERM'
            ? `the workers file ${shown} is not readable (permission denied)`
            : `the workers file ${shown} cannot be read (${code ?? String(error)})`;
    throw new UserError(
      problem,
      code === 'EACCES' || code === 'EPERM'
        ? `give the user running changeq read access to ${absolute}`
        : `create ${absolute} with a list of worker names, for example ${EXAMPLE_LIST}, or point changeq at the right file`,
      { file },
    );
  }
  return parseWorkersConfig(text, file);
}
