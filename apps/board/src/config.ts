/**
 * The board's settings, all from the environment (see docs/board.md). Read once at start-up: a bad
 * value stops the board with one line naming the variable and the fix.
 */
import { BlockList, isIP } from 'node:net';
import { resolve } from 'node:path';
import { UserError, envReader } from '@changeq/shared';

export interface BoardConfig {
  redisUrl: string;
  prefix: string;
  workersFile: string;
  host: string;
  port: number;
  /** Where the board is mounted: `/` or a path without a trailing slash, such as `/ops/queues`. */
  basePath: string;
  /** Basic authentication, or undefined when the board is open (loopback only). */
  credentials: { user: string; password: string } | undefined;
  readOnly: boolean;
}

/**
 * Whether a listen address only accepts connections from this machine: 127.0.0.0/8, ::1,
 * IPv4-mapped loopback, or the name `localhost` (which resolves to loopback by RFC 6761).
 */
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (bare === 'localhost' || bare.endsWith('.localhost')) return true;
  const family = isIP(bare);
  // IPv4-mapped IPv6 addresses (::ffff:127.0.0.1) are checked against the IPv4 rule.
  return family !== 0 && LOOPBACK.check(bare, family === 4 ? 'ipv4' : 'ipv6');
}

function normalizeBasePath(value: string): string {
  if (!value.startsWith('/') || /[?#\s\\]/.test(value) || value.includes('//')) {
    throw new UserError(
      `BOARD_BASE_PATH=${JSON.stringify(value)} is not a URL path`,
      'set BOARD_BASE_PATH to a path such as /queues (starting with /, without ?, # or spaces), or unset it to serve the board at /',
    );
  }
  return value.length > 1 ? value.replace(/\/+$/, '') : value;
}

export function readBoardConfig(env: NodeJS.ProcessEnv = process.env): BoardConfig {
  const read = envReader(env);
  const redisUrl = read.redisUrl();
  const prefix = read.queuePrefix();
  const workersFile = resolve(read.string('WORKERS_FILE', { default: './workers.toml' }));
  const host = read.string('BOARD_HOST', { default: '127.0.0.1' });
  const port = read.int('BOARD_PORT', { default: 3000, min: 0, max: 65535 });
  const basePath = normalizeBasePath(read.string('BOARD_BASE_PATH', { default: '/' }));
  const readOnly = read.bool('BOARD_READ_ONLY', { default: false });

  // Not trimmed or emptied like the other settings: a password is taken exactly as given.
  const user = env.BOARD_USER ?? '';
  const password = env.BOARD_PASSWORD ?? '';
  if ((user === '') !== (password === '')) {
    const [set, unset] =
      user === '' ? ['BOARD_PASSWORD', 'BOARD_USER'] : ['BOARD_USER', 'BOARD_PASSWORD'];
    throw new UserError(
      `${set} is set but ${unset} is not`,
      `set both BOARD_USER and BOARD_PASSWORD to switch on basic authentication, or neither`,
    );
  }
  if (user.includes(':')) {
    throw new UserError(
      'BOARD_USER contains ":", which basic authentication cannot carry in a user name',
      'choose a BOARD_USER without ":" (the password may contain one)',
    );
  }
  const credentials = user === '' ? undefined : { user, password };
  if (credentials === undefined && !isLoopback(host)) {
    throw new UserError(
      `BOARD_HOST=${JSON.stringify(host)} makes the board reachable from other machines, and BOARD_USER and BOARD_PASSWORD are not set`,
      'set BOARD_USER and BOARD_PASSWORD (basic authentication; put a TLS proxy in front of it), or unset BOARD_HOST to listen on 127.0.0.1 only',
    );
  }
  return { redisUrl, prefix, workersFile, host, port, basePath, credentials, readOnly };
}
