export { startRedis, redisServerBinary } from './redis-server.js';
export type { RedisAclUser, RedisServerOptions, RunningRedis } from './redis-server.js';
export { makeTestCertificates, type TestCertificates } from './test-certificates.js';
export { startMongo, externalMongo, testMongodCli } from './mongo-server.js';
export type { MongoServerProcessOptions, RunningMongo } from './mongo-server.js';
export { startStack } from './stack.js';
export type { StackOptions, RunningStack } from './stack.js';
export { pingRedis, type PingOptions } from './resp-ping.js';
