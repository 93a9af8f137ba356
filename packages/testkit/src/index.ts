export { startProcess, startNode, endProcesses } from './processes.js';
export type { TestProcess, StartOptions, Exit } from './processes.js';
export { waitFor } from './wait.js';
export { tempDir, workersFile } from './files.js';
export { isolatedPrefix } from './prefixes.js';
export { appMain, startApp, REPO_ROOT } from './entry-points.js';
export type { App } from './entry-points.js';
// The process primitives tests use beside the kit, so a test file needs only the kit and stack.
export { freePort, freePorts, isAlive } from '@changeq/processes';
export { changesSince } from './change-streams.js';
export { seededRandom } from './random.js';
export { writeChaos } from './writer.js';
export type { ChaosWrites, WriteTally } from './writer.js';
export { Supervised } from './supervised.js';
export { waitForDeliveries } from './wait-for-deliveries.js';
export type { SupervisedExit, SupervisedOptions } from './supervised.js';
export {
  CallLog,
  checkDeliveries,
  documentOf,
  expectedJobs,
  jobKey,
  recordingHandlersPath,
  checkTransactionMarks,
} from './deliveries.js';
export type {
  DeliveryReport,
  ExpectedJob,
  HandlerCall,
  OrderViolation,
  ViolationKind,
} from './deliveries.js';
