/**
 * @changeq/source/stream: the change stream and the event planner alone, for the ingest's reader
 * thread (nothing here loads BullMQ or opens Redis connections).
 */
export { ChangeSource, type Batch, type StartOptions } from './change-source.js';
export { planEvent, namespaceOf } from './planner.js';
