/**
 * REDIS_URL and the TLS files beside it: validated once, then turned into ioredis options (a
 * plain object: this package does not depend on ioredis).
 *
 *   redis://[[user]:password@]host[:port][/db]     rediss://... for TLS
 *   redis+cluster://[[user]:password@]host:port,host:port,...   a Redis Cluster: its seed nodes
 *                                                   (rediss+cluster:// for TLS; database 0 only)
 *   REDIS_TLS_CA     PEM file of the certificate authorities to trust (default: Node's own list)
 *   REDIS_TLS_CERT   PEM client certificate, with REDIS_TLS_KEY (Redis' tls-auth-clients)
 */
import { readFileSync } from 'node:fs';
import { UserError } from '../errors.js';
import { redactUri } from './redact.js';
import { credentialsProblem, splitUri } from './uri-parts.js';

export const REDIS_EXAMPLE = 'redis://127.0.0.1:6379';
const REDIS_FIX_EXAMPLE = `use a URL such as ${REDIS_EXAMPLE}, rediss://user:password@host:6380/0 or, for a Redis Cluster, redis+cluster://host:7000,host:7001,host:7002`;

/** The TLS settings that REDIS_URL cannot carry. */
export const REDIS_TLS_VARIABLES = ['REDIS_TLS_CA', 'REDIS_TLS_CERT', 'REDIS_TLS_KEY'] as const;

/** Options for ioredis's constructor, from a redis:// or rediss:// URL. */
export interface RedisConnectionOptions {
  host: string;
  port: number;
  username?: string;
  password?: string;
  db?: number;
  tls?: { ca?: string; cert?: string; key?: string };
}

/** The seed nodes of a Redis Cluster URL, in the order given. */
export interface RedisNode {
  host: string;
  port: number;
}

const CLUSTER_SCHEME = /^(rediss?)\+cluster:\/\//i;

/** Whether `url` names a Redis Cluster (`redis+cluster://` or `rediss+cluster://`). */
export function isRedisClusterUrl(url: string): boolean {
  return CLUSTER_SCHEME.test(url);
}

/**
 * A cluster URL as one plain URL per seed node (`redis[s]://[userinfo@]host:port[/path]`), so
 * that each is checked and read exactly as a single Redis URL is.
 */
function clusterNodeUrls(url: string): string[] {
  const scheme = CLUSTER_SCHEME.exec(url)![1]!;
  const { userinfo, rest } = splitUri(url);
  const slash = rest.search(/[/?#]/);
  const hosts = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash);
  const credentials = userinfo === undefined ? '' : `${userinfo}@`;
  return hosts.split(',').map((host) => `${scheme}://${credentials}${host}${path}`);
}

function clusterUrlProblem(url: string): string | undefined {
  const nodes = clusterNodeUrls(url);
  if (nodes.some((node) => /^rediss?:\/\/(?:[^@]*@)?(?:[/?#]|$)/i.test(node))) {
    return 'has an empty host in its list (write host:port,host:port,...)';
  }
  for (const node of nodes) {
    const problem = redisUrlProblem(node);
    if (problem !== undefined) return problem;
  }
  const db = /^\/(\d+)$/.exec(new URL(nodes[0]!).pathname)?.[1];
  if (db !== undefined && Number(db) !== 0) {
    return `selects database ${db}, but a Redis Cluster has only database 0`;
  }
  return undefined;
}

/**
 * The seed nodes of a Redis Cluster URL, or undefined for a single Redis. The client asks them
 * for the cluster's layout and then connects to every master itself.
 */
export function redisClusterNodes(url: string): RedisNode[] | undefined {
  if (!isRedisClusterUrl(url)) return undefined;
  return clusterNodeUrls(url).map((node) => {
    const parsed = new URL(node);
    return {
      host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: parsed.port === '' ? 6379 : Number(parsed.port),
    };
  });
}

function decodeSafely(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** Why a Redis URL is unusable, or undefined when it is fine. Never quotes a password. */
export function redisUrlProblem(url: string): string | undefined {
  if (isRedisClusterUrl(url)) return clusterUrlProblem(url);
  if (!/^rediss?:\/\//i.test(url)) {
    return 'does not start with redis://, rediss:// or (for a Redis Cluster) redis+cluster://';
  }
  const credentials = credentialsProblem(url, { colonInPassword: true });
  if (credentials !== undefined) return credentials;
  const { userinfo } = splitUri(url);
  if (userinfo !== undefined && userinfo !== '' && !userinfo.includes(':')) {
    return 'has a user name but no password (Redis takes redis://user:password@host, or redis://:password@host for the default user)';
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    const port = /^rediss?:\/\/(?:[^@/]*@)?(?:\[[^\]]*\]|[^:/?#]*):(\d+)/i.exec(url)?.[1];
    return port !== undefined && Number(port) > 65535
      ? `has the port ${port}, above 65535`
      : 'is not a valid URL';
  }
  if (parsed.hostname === '') return 'has no host';
  if (parsed.port === '0') return 'has port 0';
  const path = parsed.pathname;
  if (path !== '' && path !== '/' && !/^\/\d+$/.test(path)) {
    return `has the path ${JSON.stringify(path)}; the only path Redis URLs take is a database number such as /0`;
  }
  if (/^\/\d+$/.test(path) && Number(path.slice(1)) > 2_147_483_647) {
    return `has the database number ${path.slice(1)}, which no Redis has`;
  }
  return undefined;
}

function readPem(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const file = env[name]?.trim();
  if (file === undefined || file === '') return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new UserError(
      `${name}=${JSON.stringify(file)} cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      `set ${name} to the path of a PEM file, or unset it`,
    );
  }
  if (!text.includes('-----BEGIN ')) {
    throw new UserError(
      `${name}=${JSON.stringify(file)} is not a PEM file (no "-----BEGIN" line)`,
      `set ${name} to the path of a PEM file, or unset it`,
    );
  }
  return text;
}

/** The TLS options of REDIS_TLS_*; refuses them beside a plain redis:// URL. */
function tlsOptions(url: string, env: NodeJS.ProcessEnv): RedisConnectionOptions['tls'] {
  const secure = /^rediss[:+]/i.test(url);
  const set = REDIS_TLS_VARIABLES.filter((name) => (env[name]?.trim() ?? '') !== '');
  if (!secure) {
    if (set.length === 0) return undefined;
    throw new UserError(
      `${set.join(' and ')} ${set.length === 1 ? 'is' : 'are'} set, but the Redis URL starts with redis://, which does not use TLS`,
      `write the URL as rediss://... to connect over TLS, or unset ${set.join(' and ')}`,
    );
  }
  const tls: NonNullable<RedisConnectionOptions['tls']> = {};
  const ca = readPem(env, 'REDIS_TLS_CA');
  const cert = readPem(env, 'REDIS_TLS_CERT');
  const key = readPem(env, 'REDIS_TLS_KEY');
  if ((cert === undefined) !== (key === undefined)) {
    throw new UserError(
      `${cert === undefined ? 'REDIS_TLS_KEY' : 'REDIS_TLS_CERT'} is set without ${cert === undefined ? 'REDIS_TLS_CERT' : 'REDIS_TLS_KEY'}`,
      'set both REDIS_TLS_CERT and REDIS_TLS_KEY (a client certificate and its key), or neither',
    );
  }
  if (ca !== undefined) tls.ca = ca;
  if (cert !== undefined && key !== undefined) Object.assign(tls, { cert, key });
  return tls;
}

/**
 * Connection options for ioredis from a Redis URL and, for rediss://, the REDIS_TLS_* files of
 * `env` (process.env by default, so every process and every connection reads them alike). For a
 * cluster URL: the first seed node's, with the credentials and TLS every node shares (the
 * nodes themselves: `redisClusterNodes`).
 */
export function redisConnectionOptions(
  url: string,
  env: NodeJS.ProcessEnv = process.env,
): RedisConnectionOptions {
  const problem = redisUrlProblem(url);
  if (problem !== undefined) {
    throw new UserError(
      `the Redis URL ${JSON.stringify(redactUri(url))} ${problem}`,
      REDIS_FIX_EXAMPLE,
    );
  }
  const parsed = new URL(isRedisClusterUrl(url) ? clusterNodeUrls(url)[0]! : url);
  const options: RedisConnectionOptions = {
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: parsed.port === '' ? 6379 : Number(parsed.port),
  };
  if (parsed.username !== '') options.username = decodeSafely(parsed.username);
  if (parsed.password !== '') options.password = decodeSafely(parsed.password);
  const db = /^\/(\d+)$/.exec(parsed.pathname)?.[1];
  if (db !== undefined) options.db = Number(db);
  const tls = tlsOptions(url, env);
  if (tls !== undefined) options.tls = tls;
  return options;
}
