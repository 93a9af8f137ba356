export { spawnTracked, terminate, isAlive, freePort, freePorts, waitForExit } from './processes.js';
export type { TrackedSpawnOptions } from './processes.js';
export { waitForLine } from './wait-for-line.js';
export { processCpuMicros, mainThreadCpuMicros, machineCpuMicros, rssMb } from './usage.js';
