/**
 * Dead letters as stored: the `deadLetter` part of a job in a worker's dead-letter queue
 * (`<worker>.dead`, see docs/handlers.md), and the operator commands appended to the list
 * `workerKeys().commands` that the active worker process carries out in order. JSON.
 */
import type { EventJobData } from '@changeq/shared';

export interface DeadLetterInfo {
  /** 'dead': its handler failed every attempt; 'parked': it waits behind a dead letter. */
  kind: 'dead' | 'parked';
  /** The BullMQ queue and job the event came from. */
  originalQueue: string;
  originalJobId: string;
  /** dead: the last failure. */
  error?: { message: string; stack?: string };
  /** dead: how many attempts were made. */
  attempts?: number;
  /** dead: when the last attempt failed (ISO 8601). */
  failedAt?: string;
  /**
   * parked: the dead letter it was parked behind (listDeadLetters reports the one blocking the
   * document now), and its place in the document's line (ascending).
   */
  blockedBy?: string;
  seq?: number;
  parkedAt?: string;
}

/** The data of a job in a dead-letter queue: the event's job data and how it got there. */
export interface DeadLetterJobData extends EventJobData {
  deadLetter: DeadLetterInfo;
}

/** An operator's request, carried out by the active worker process. */
export interface DeadLetterCommand {
  op: 'retry' | 'discard';
  jobId: string;
  at: string;
}

export function encodeCommand(command: DeadLetterCommand): string {
  return JSON.stringify(command);
}

/** A command read from the list; undefined when it is not JSON (not written by changeq). */
export function decodeCommand(raw: string): DeadLetterCommand | undefined {
  try {
    return JSON.parse(raw) as DeadLetterCommand;
  } catch {
    return undefined;
  }
}
