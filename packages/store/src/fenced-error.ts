/**
 * The refusal of a fenced write: another ingest took the lease over (its fencing number is
 * larger), so this one may neither enqueue nor store a position. Nothing was written.
 */
export class FencedError extends Error {
  constructor(
    /** What was refused, e.g. "the commit to queue alpha". */
    readonly what: string,
    /** This process's fencing number. */
    readonly fence: number,
    /** What the fence held instead (null: nothing, or it is not known). */
    readonly found: string | null,
  ) {
    super(
      `${what} was refused: this ingest's fencing number is ${fence}, the fence holds ${found ?? 'nothing'} (another ingest took the lease over)`,
    );
    this.name = 'FencedError';
  }
}
