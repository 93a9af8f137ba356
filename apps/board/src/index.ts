export { readBoardConfig, isLoopback, type BoardConfig } from './config.js';
export { FailedSignInThrottle, basicAuth, credentialsMatch, parseBasicAuth } from './auth.js';
export { formatJobData, relaxExtendedJson } from './format.js';
export { createGuard, type GuardOptions, type QueueKind } from './guard.js';
export { QueueRegistry } from './queues.js';
export { startBoard, type Board, type StartBoardOptions } from './server.js';
export { watchWorkersFile, type WorkersFileWatcher } from '@changeq/shared';
