/**
 * What finishing a task writes to Redis, decided by the scheduler (the handler succeeded, or
 * failed every attempt) and the dead-letter policy (dead letter, park, drop); the outcome
 * writer persists it.
 */

export type Outcome =
  /** The handler succeeded with this value. */
  | { kind: 'completed'; returnValue: unknown }
  /** The last attempt failed: the event is kept in the dead-letter queue. */
  | {
      kind: 'dead-lettered';
      error: { message: string; stack?: string };
      attempts: number;
      failedAt: string;
      /** The document this dead letter blocks until an operator retries or discards it. */
      blocks: string | null;
    }
  /** The document is blocked by the dead letter `blockedBy`: the event waits behind it. */
  | { kind: 'parked'; doc: string; blockedBy: string; parkedAt: string }
  /** Finished without running: already dead-lettered before a restart, or no longer needed. */
  | { kind: 'dropped' };
