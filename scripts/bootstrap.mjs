#!/usr/bin/env node
// Installs what the project needs on a fresh machine, and nothing when it is already there:
// the npm dependencies (again whenever package-lock.json changed), Debian's redis-server and
// openssl (the tests of Redis over TLS make their certificates with it), and,
// with --browser (the test suite's browser test of Bull Board), Debian's chromium.
// Uses only Node's standard library, because it runs before `npm ci`.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const quiet = process.argv.includes('--quiet');
const browser = process.argv.includes('--browser');
const say = (line) => {
  if (!quiet) console.error(`[bootstrap] ${line}`);
};
const fail = (problem, fix) => {
  console.error(`[bootstrap] ${problem}\n[bootstrap] fix: ${fix}`);
  process.exit(1);
};

function checkNode() {
  const [major, minor] = process.versions.node.split('.').map(Number);
  if (major < 20 || (major === 20 && minor < 19)) {
    fail(
      `Node ${process.versions.node} is too old: the MongoDB driver needs Node 20.19 or newer.`,
      'install Node 20.19+ (for example from nodejs.org or your distribution) and run the command again.',
    );
  }
}

function ensureNpmDependencies() {
  const lockPath = join(root, 'package-lock.json');
  const stampPath = join(root, 'node_modules', '.changeq-lock-hash');
  const lockHash = () =>
    existsSync(lockPath) ? createHash('sha256').update(readFileSync(lockPath)).digest('hex') : '';
  const installed = existsSync(stampPath) ? readFileSync(stampPath, 'utf8').trim() : '';
  if (installed === lockHash() && existsSync(join(root, 'node_modules', '.bin', 'turbo'))) return;
  // `npm ci` installs exactly the committed lock and never rewrites it, so a fresh clone stays
  // clean (`npm install` would add the foreign-platform optional packages a partial lock lacks).
  // The project's .npmrc silences npm's own messages (see there); an install wants them.
  const args = ['ci', '--no-audit', '--no-fund', '--loglevel=notice'];
  say(`installing npm dependencies (npm ${args[0]})`);
  const result = spawnSync('npm', args, {
    cwd: root,
    stdio: quiet ? ['ignore', 'ignore', 'pipe'] : ['inherit', 'inherit', 'pipe'],
    encoding: 'utf8',
  });
  const outOfSync = result.status !== 0 && /EUSAGE/.test(result.stderr ?? '');
  if (!outOfSync) process.stderr.write(result.stderr ?? '');
  if (result.status !== 0) {
    if (outOfSync) {
      fail(
        'package-lock.json does not match the package.json files (npm ci refused it).',
        'run `npm install`, then commit package-lock.json with the package.json change.',
      );
    }
    fail(
      `npm ${args[0]} failed (exit ${result.status}).`,
      'check that the npm registry is reachable (npm ping) and run the command again.',
    );
  }
  writeFileSync(stampPath, `${lockHash()}\n`);
}

function onPath(bin) {
  return spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' }).status === 0;
}

export function redisServerBinary() {
  if (process.env.REDIS_SERVER_BIN) return process.env.REDIS_SERVER_BIN;
  for (const candidate of ['/usr/bin/redis-server', '/usr/local/bin/redis-server']) {
    if (existsSync(candidate)) return candidate;
  }
  return onPath('redis-server') ? 'redis-server' : null;
}

/** Installs Debian packages with apt-get, as root or with passwordless sudo; exits with the fix otherwise. */
function aptInstall(pkg, { why, fix }) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const sudo = isRoot ? [] : onPath('sudo') ? ['sudo', '-n'] : null;
  if (!sudo || !onPath('apt-get')) {
    fail(
      `${pkg} is not installed and this script cannot install it (needs apt-get and root or passwordless sudo).`,
      fix,
    );
  }
  say(`installing Debian's ${pkg} with apt-get (${why})`);
  // RUNLEVEL=1 keeps a package's init script from starting a system-wide service.
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive', RUNLEVEL: '1' };
  const run = (args) => {
    const [cmd, ...rest] = [...sudo, ...args];
    execFileSync(cmd, rest, { stdio: quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit', env });
  };
  try {
    run(['apt-get', 'update']);
    run(['apt-get', 'install', '-y', '--no-install-recommends', pkg]);
  } catch {
    fail(`apt-get could not install ${pkg}.`, `check that the Debian package mirrors are reachable, or ${fix}`);
  }
}

function ensureRedis() {
  if (redisServerBinary()) return;
  aptInstall('redis-server', {
    why: 'the project starts its own instances',
    fix: 'install Redis 6.2+ yourself (Debian: apt-get install redis-server) or set REDIS_SERVER_BIN to its path.',
  });
  if (!redisServerBinary()) {
    fail('redis-server is still missing after apt-get install.', 'install it by hand and set REDIS_SERVER_BIN.');
  }
}

/** Where the browser test of apps/board expects Chromium (Debian's package puts it there). */
export const CHROMIUM_BIN = '/usr/bin/chromium';

function ensureChromium() {
  if (existsSync(CHROMIUM_BIN)) return;
  aptInstall('chromium', {
    why: "the browser test of Bull Board drives it headless; it is not Playwright's download",
    fix: `install Chromium yourself (Debian: apt-get install chromium) so that ${CHROMIUM_BIN} exists.`,
  });
  if (!existsSync(CHROMIUM_BIN)) {
    fail(`${CHROMIUM_BIN} is still missing after apt-get install chromium.`, "install Debian's chromium package by hand.");
  }
}

function ensureOpenssl() {
  if (onPath('openssl')) return;
  aptInstall('openssl', {
    why: 'the tests of Redis over TLS make a certificate authority and certificates with it',
    fix: 'install OpenSSL yourself (Debian: apt-get install openssl).',
  });
}

checkNode();
ensureNpmDependencies();
ensureRedis();
ensureOpenssl();
if (browser) ensureChromium();
