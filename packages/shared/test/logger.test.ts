import { Writable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger, LOG_LEVELS, UserError } from '../src/index.js';

/** A destination that keeps what it receives; `isTTY` pretends to be a terminal. */
class Capture extends Writable {
  readonly chunks: string[] = [];
  isTTY: boolean;

  constructor(isTTY = false) {
    super();
    this.isTTY = isTTY;
  }

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, done: () => void): void {
    this.chunks.push(chunk.toString());
    done();
  }

  override write(chunk: unknown, ...rest: unknown[]): boolean {
    // Record synchronously: the logger must not need the event loop to get lines out.
    this.chunks.push(String(chunk));
    const callback = rest.find((arg) => typeof arg === 'function') as (() => void) | undefined;
    callback?.();
    return true;
  }

  get text(): string {
    return this.chunks.join('');
  }

  lines(): Record<string, unknown>[] {
    return this.text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }
}

const SECRET = 'hunter2-s3cret';
const MONGO = `mongodb://app:${SECRET}@db1:27017,db2:27017/shop?replicaSet=rs0`;
const REDIS = `rediss://default:${SECRET}@cache:6380/0`;

describe('createLogger: JSON lines', () => {
  it('writes one JSON object per line with level, time, name and message', () => {
    const out = new Capture();
    const log = createLogger({ name: 'changeq-test', destination: out, env: {} });
    log.info({ queue: 'alpha' }, 'started %d workers', 3);
    const [line] = out.lines();
    expect(line).toMatchObject({
      level: 30,
      name: 'changeq-test',
      msg: 'started 3 workers',
      queue: 'alpha',
    });
    expect(String(line?.time)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(out.chunks).toHaveLength(1);
  });

  it('filters by level: opts.level, then LOG_LEVEL, then info', () => {
    const out = new Capture();
    const info = createLogger({ name: 't', destination: out, env: {} });
    info.debug('hidden');
    info.info('shown');
    expect(out.lines().map((l) => l.msg)).toEqual(['shown']);

    const fromEnv = new Capture();
    createLogger({ name: 't', destination: fromEnv, env: { LOG_LEVEL: 'DEBUG' } }).debug(
      'debug on',
    );
    expect(fromEnv.lines().map((l) => l.msg)).toEqual(['debug on']);

    const fromOpts = new Capture();
    const warn = createLogger({
      name: 't',
      level: 'warn',
      destination: fromOpts,
      env: { LOG_LEVEL: 'trace' },
    });
    warn.info('hidden');
    warn.warn('shown');
    expect(fromOpts.lines().map((l) => l.msg)).toEqual(['shown']);
    expect(warn.level).toBe('warn');

    const silent = new Capture();
    createLogger({ name: 't', level: 'silent', destination: silent, env: {} }).fatal('nothing');
    expect(silent.text).toBe('');
  });

  it('rejects an unknown level from opts or LOG_LEVEL', () => {
    expect(() => createLogger({ name: 't', level: 'verbose', env: {} })).toThrow(UserError);
    expect(() => createLogger({ name: 't', level: 'verbose', env: {} })).toThrow(
      'the log level "verbose" is not one of fatal, error, warn, info, debug, trace, silent',
    );
    expect(() => createLogger({ name: 't', env: { LOG_LEVEL: 'loud' } })).toThrow(
      'LOG_LEVEL="loud" is not one of fatal, error, warn, info, debug, trace, silent',
    );
    expect(LOG_LEVELS).toContain('info');
  });
});

describe('createLogger: format', () => {
  it('is JSON when the destination is not a terminal, pretty when it is', () => {
    const pipe = new Capture(false);
    createLogger({ name: 'w', destination: pipe, env: {} }).info('hello');
    expect(() => pipe.lines()).not.toThrow();

    const tty = new Capture(true);
    createLogger({ name: 'w', destination: tty, env: {} }).info('hello');
    expect(tty.text.startsWith('{')).toBe(false);
    expect(tty.text).toContain('hello');
    expect(tty.text).toContain('\u001b['); // colours on a terminal
  });

  it('follows LOG_FORMAT, and opts.pretty over it', () => {
    const forcedJson = new Capture(true);
    createLogger({ name: 'w', destination: forcedJson, env: { LOG_FORMAT: 'json' } }).info('x');
    expect(forcedJson.lines()[0]).toMatchObject({ msg: 'x' });

    const forcedPretty = new Capture(false);
    createLogger({ name: 'w', destination: forcedPretty, env: { LOG_FORMAT: 'pretty' } }).warn(
      'careful',
    );
    expect(forcedPretty.text).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] WARN \(w\): careful\n$/);
    expect(forcedPretty.text).not.toContain('\u001b['); // no colours into a pipe

    const optsWin = new Capture(false);
    createLogger({
      name: 'w',
      destination: optsWin,
      pretty: true,
      env: { LOG_FORMAT: 'json' },
    }).info('y');
    expect(optsWin.text).toContain('INFO (w): y');

    const noColor = new Capture(true);
    createLogger({ name: 'w', destination: noColor, env: { NO_COLOR: '1' } }).info('plain');
    expect(noColor.text).toContain('INFO (w): plain');
    expect(noColor.text).not.toContain('\u001b[');

    expect(() => createLogger({ name: 'w', env: { LOG_FORMAT: 'xml' } })).toThrow(
      'LOG_FORMAT="xml" is not one of auto, json, pretty',
    );
  });

  it('prints fields and error stacks in pretty mode', () => {
    const out = new Capture(false);
    const log = createLogger({ name: 'w', destination: out, pretty: true, env: {} });
    log.error({ err: new Error('boom'), queue: 'alpha' }, 'job failed');
    expect(out.text).toContain('ERROR (w): job failed');
    expect(out.text).toContain('queue: "alpha"');
    expect(out.text).toContain('Error: boom');
    expect(out.text).toMatch(/at .*logger\.test\.ts/);
  });
});

describe('createLogger: stderr by default', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('writes to process.stderr, not stdout', () => {
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const stdout = vi.spyOn(process.stdout, 'write');
    createLogger({ name: 'default-dest', pretty: false, env: {} }).info('to stderr');
    expect(stdout).not.toHaveBeenCalled();
    const written = stderr.mock.calls.map((call) => String(call[0])).join('');
    expect(JSON.parse(written)).toMatchObject({ name: 'default-dest', msg: 'to stderr' });
  });
});

describe('createLogger: credentials are never printed', () => {
  /** Logs the same things in JSON and in pretty mode and returns both outputs. */
  function both(write: (log: ReturnType<typeof createLogger>) => void): string[] {
    return [false, true].map((pretty) => {
      const out = new Capture();
      write(createLogger({ name: 'sec', destination: out, pretty, level: 'trace', env: {} }));
      return out.text;
    });
  }

  it('masks URI fields, nested fields, arrays and URL objects', () => {
    for (const text of both((log) => {
      log.info(
        {
          uri: MONGO,
          mongodbUri: MONGO,
          redisUrl: REDIS,
          url: new URL(REDIS),
          config: { sources: [{ uri: MONGO }], note: `see ${REDIS} for the cache` },
        },
        'connecting',
      );
    })) {
      expect(text).not.toContain(SECRET);
      expect(text).toContain('app:***@db1:27017,db2:27017/shop?replicaSet=rs0');
      expect(text).toContain('default:***@cache:6380');
    }
    const [json] = both((log) => log.info({ uri: MONGO }, 'x'));
    expect(JSON.parse(json ?? '')).toMatchObject({
      uri: 'mongodb://app:***@db1:27017,db2:27017/shop?replicaSet=rs0',
    });
  });

  it('masks the message and its format arguments', () => {
    for (const text of both((log) => {
      log.warn(`retrying ${MONGO}`);
      log.warn('retrying %s and %o', REDIS, { uri: MONGO });
      log.info({ n: 1 }, 'again %s', MONGO);
    })) {
      expect(text).not.toContain(SECRET);
      expect(text).toContain('retrying mongodb://app:***@db1');
    }
  });

  it('masks error messages, stacks and causes, however the error is logged', () => {
    const error = () => {
      const cause = new Error(`getaddrinfo failed for ${REDIS}`);
      return new Error(`cannot connect to ${MONGO}`, { cause });
    };
    for (const text of both((log) => {
      log.error(error());
      log.error({ err: error() });
      log.error({ err: error() }, 'failed');
      log.error(error(), 'failed: %s', 'ingest');
      log.error({ error: error() }, 'under another key');
    })) {
      expect(text).not.toContain(SECRET);
      expect(text).toContain('cannot connect to mongodb://app:***@db1');
      expect(text).toContain('getaddrinfo failed for rediss://default:***@cache');
    }
    const [json] = both((log) => log.error(error()));
    const line = JSON.parse(json ?? '') as {
      msg: string;
      err: { message: string; stack: string; type: string };
    };
    expect(line.msg).toBe(
      'cannot connect to mongodb://app:***@db1:27017,db2:27017/shop?replicaSet=rs0',
    );
    expect(line.err.type).toBe('Error');
    // pino appends the messages of causes.
    expect(line.err.message).toBe(
      `${line.msg}: getaddrinfo failed for rediss://default:***@cache:6380/0`,
    );
    expect(line.err.stack).toContain('cannot connect to mongodb://app:***@');
  });

  it('masks child bindings', () => {
    for (const text of both((log) => {
      const child = log.child({ uri: MONGO });
      child.info('child');
      child.child({ redisUrl: REDIS }).info('grandchild');
      child.setBindings({ url: REDIS });
      child.info('rebound');
    })) {
      expect(text).not.toContain(SECRET);
      expect(text).toContain('grandchild');
      expect(text).toContain('rediss://default:***@cache');
    }
  });

  it('leaves values without URIs as they are (and does not copy them needlessly)', () => {
    const [json] = both((log) =>
      log.info({ a: 1, s: 'x@y:z', list: [1, 'b'], nested: { ok: true } }, 'plain'),
    );
    expect(JSON.parse(json ?? '')).toMatchObject({
      a: 1,
      s: 'x@y:z',
      list: [1, 'b'],
      nested: { ok: true },
    });
  });

  it('does not leak from deeply nested objects', () => {
    let deep: Record<string, unknown> = { uri: MONGO };
    for (let i = 0; i < 30; i++) deep = { deeper: deep };
    for (const text of both((log) => log.info({ deep }, 'deep'))) {
      expect(text).not.toContain(SECRET);
      expect(text).toContain('nested too deep to log');
    }
  });

  it('survives cyclic objects', () => {
    const cyclic: Record<string, unknown> = { uri: MONGO };
    cyclic.self = cyclic;
    for (const text of both((log) => log.info({ cyclic }, 'cycle'))) {
      expect(text).not.toContain(SECRET);
      expect(text).toContain('cycle');
    }
  });
});
