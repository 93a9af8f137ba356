#!/usr/bin/env node
// changeq-test-mongod: run the server as its own process. On ready, prints exactly one JSON line
// {"uri","port","pid"} to stdout; logs go to stderr. SIGTERM/SIGINT close sockets, flush the
// log and exit 0. Unknown flags print one line and exit 2.
import { parseArgs } from 'node:util';
import { startMongoServer } from './index.js';

/** name:password of one more startup user, for callers that keep it off the command line. */
const USER_ENV = 'CHANGEQ_TEST_MONGOD_USER';

const USAGE = `Usage: changeq-test-mongod [options]
  --host <addr>                     interface to listen on (default 127.0.0.1)
  --port <n>                        TCP port (default 0: a free port)
  --dbpath <dir>                    keep data and change history in <dir> (default: in memory)
  --repl-set <name>                 replica set name (default rs0)
  --mongos                          present itself as a mongos (hello: msg "isdbgrid"); accepts
                                    shardCollection, whose shard key documentKey then carries
  --history-max-events <n>          change history window by count (default 1000000)
  --history-max-age-seconds <n>     change history window by age (default 86400)
  --noop-interval-ms <n>            write a periodic no-op after <n> ms without writes, so idle
                                    change streams' resume tokens advance (default 10000, 0: off)
  --auth                            require authentication (SCRAM-SHA-256), like mongod --auth
  --user <name:password>            with --auth: create (or keep) this root user in admin at
                                    startup; may be repeated. The environment variable
                                    ${USER_ENV} gives one more the same way, out of
                                    sight of other users' ps
  --help                            show this help`;

/** name:password, split at the first ':' (passwords may contain ':'). Never echoes a password. */
function parseUser(source: string, v: string): { user: string; password: string } {
  const colon = v.indexOf(':');
  if (colon <= 0) fail(`${source} expects name:password, got no name or no ':'`);
  const password = v.slice(colon + 1);
  if (password === '')
    fail(`${source} expects name:password, the password of '${v.slice(0, colon)}' is empty`);
  return { user: v.slice(0, colon), password };
}

/** The command line with passwords hidden, for getCmdLineOpts. */
function redacted(argv: string[]): string[] {
  return argv.map((a, i) => {
    if (argv[i - 1] === '--user') return `${a.split(':')[0] ?? ''}:<redacted>`;
    if (a.startsWith('--user=')) return `--user=${a.slice(7).split(':')[0] ?? ''}:<redacted>`;
    return a;
  });
}

function fail(message: string): never {
  process.stderr.write(`changeq-test-mongod: ${message} (see --help)\n`);
  process.exit(2);
}

function intFlag(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) fail(`--${name} expects a non-negative integer, got '${v}'`);
  return Number(v);
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        host: { type: 'string' },
        port: { type: 'string' },
        dbpath: { type: 'string' },
        'repl-set': { type: 'string' },
        mongos: { type: 'boolean' },
        'history-max-events': { type: 'string' },
        'history-max-age-seconds': { type: 'string' },
        'noop-interval-ms': { type: 'string' },
        auth: { type: 'boolean' },
        user: { type: 'string', multiple: true },
        help: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    fail((err as Error).message.split('\n')[0] ?? 'invalid arguments');
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const log = (line: string): void => {
    process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  };
  if (values.user && !values.auth)
    fail('--user needs --auth (startup users are for access control)');
  const users = (values.user ?? []).map((u) => parseUser('--user', u));
  const fromEnv = process.env[USER_ENV];
  if (values.auth && fromEnv) users.push(parseUser(USER_ENV, fromEnv));
  const server = await startMongoServer(
    {
      host: values.host,
      port: intFlag('port', values.port),
      dataDir: values.dbpath,
      replSetName: values['repl-set'],
      mongos: values.mongos ?? false,
      history: {
        maxEvents: intFlag('history-max-events', values['history-max-events']),
        maxAgeSeconds: intFlag('history-max-age-seconds', values['history-max-age-seconds']),
      },
      noopIntervalMs: intFlag('noop-interval-ms', values['noop-interval-ms']),
      log,
      auth: values.auth ? { users } : undefined,
    },
    { argv: redacted(process.argv.slice(1)) },
  );
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log(`received ${signal}, shutting down`);
    server.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log(`error while stopping: ${String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.stdout.write(
    `${JSON.stringify({ uri: server.uri, port: server.port, pid: process.pid })}\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`changeq-test-mongod: ${(err as Error).message ?? String(err)}\n`);
  process.exit(1);
});
