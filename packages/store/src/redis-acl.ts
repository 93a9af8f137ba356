/**
 * The least a Redis ACL user needs to run changeq: the commands its processes send, and those
 * the Lua scripts they run call (BullMQ's and our own: Redis checks a script's calls against the
 * user too), on the keys under one QUEUE_PREFIX. docs/operations.md shows the rules; a test keeps
 * the list equal to what the shipped scripts call, and runs every process under such a user.
 */

/** Commands sent by the processes themselves, and why. */
const CLIENT_COMMANDS = {
  // Every connection: the handshake, its name (CLIENT SETNAME, SETINFO), database and health.
  // (CLIENT SETINFO too, from Redis 7.2 on; ioredis ignores a refusal, and 7.0 lacks it.)
  connection: ['auth', 'ping', 'select', 'client|setname', 'info'],
  // A Redis Cluster's client reads the cluster's layout (CLUSTER SLOTS) and waits for it to be
  // ready (CLUSTER INFO).
  cluster: ['cluster|slots', 'cluster|info'],
  // ioredis runs Lua scripts by digest, and sends the script itself when Redis lacks it.
  scripts: ['evalsha', 'eval'],
  // `changeq status` and the commands that must not race with a running ingest look for its
  // connection by name (CLIENT LIST); the ingest commits in MULTI/EXEC transactions.
  operations: ['client|list', 'multi', 'exec', 'discard', 'watch', 'unwatch'],
  // Workers wait for new jobs on the queue's marker; BullMQ reads jobs, counts and events.
  reads: [
    'bzpopmin',
    'exists',
    'get',
    'mget',
    'hget',
    'hgetall',
    'hmget',
    'lindex',
    'llen',
    'lrange',
    'scard',
    'smembers',
    'type',
    'xlen',
    'xrange',
    'xrevrange',
    'zcard',
    'zcount',
    'zrange',
    'zrangebyscore',
    'zrevrange',
    'zscore',
  ],
  // Writes outside scripts: the resume token, leases, dead-letter commands, BullMQ's cleanup.
  writes: ['set', 'del', 'unlink', 'hset', 'hdel', 'lpop', 'rpush', 'zadd', 'zrem', 'xtrim'],
} as const;

/**
 * Commands called by the Lua scripts changeq runs: BullMQ's (bullmq/dist/esm/commands) and
 * packages/store/lua. Kept equal to what those scripts call by test/redis-acl.test.ts.
 */
export const SCRIPT_COMMANDS = [
  'del',
  'exists',
  'get',
  'hdel',
  'hexists',
  'hget',
  'hgetall',
  'hincrby',
  'hlen',
  'hmget',
  'hmset',
  'hscan',
  'hset',
  'incr',
  'incrby',
  'lindex',
  'llen',
  'lpop',
  'lpos',
  'lpush',
  'lrange',
  'lrem',
  'lset',
  'ltrim',
  'persist',
  'pexpire',
  'pexpireat',
  'pttl',
  'rename',
  'rpop',
  'rpoplpush',
  'rpush',
  'sadd',
  'scard',
  'set',
  'sismember',
  'smembers',
  'srem',
  'sscan',
  'time',
  'type',
  'unlink',
  'xadd',
  'xdel',
  'xlen',
  'xrange',
  'xread',
  'xtrim',
  'zadd',
  'zcard',
  'zcount',
  'zlexcount',
  'zpopmin',
  'zrange',
  'zrangebylex',
  'zrangebyscore',
  'zrem',
  'zremrangebyrank',
  'zremrangebyscore',
  'zrevrange',
  'zrevrangebyscore',
  'zscore',
] as const;

/** Every command changeq needs, sorted, without repeats (`client|list` is a subcommand). */
export const REDIS_COMMANDS: readonly string[] = [
  ...new Set([...Object.values(CLIENT_COMMANDS).flat(), ...SCRIPT_COMMANDS]),
].sort();

/**
 * The ACL rules of a user that can run changeq with `prefix` and nothing else: its keys only
 * (`~<prefix>:*`), no Pub/Sub channels, only the commands above. For ACL SETUSER or a `user`
 * line of redis.conf (after `on >password`).
 */
export function redisAclRules(prefix: string): string {
  return [
    'resetkeys',
    `~${prefix}:*`,
    'resetchannels',
    '-@all',
    ...REDIS_COMMANDS.map((c) => `+${c}`),
  ].join(' ');
}
