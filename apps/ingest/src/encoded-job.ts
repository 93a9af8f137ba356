import { Job, type JobJson, type JobsOptions, type Queue } from 'bullmq';

/**
 * A BullMQ job whose data is already JSON text. BullMQ stores a job's data as
 * `JSON.stringify(data)` (Job#asJSON, "prepares a job to be serialized for storage in Redis");
 * the ingest encodes each event in its reader thread, so this job hands that text over as it is
 * instead of parsing it back to an object only to stringify it again on the main thread. What
 * lands in Redis is byte for byte what `new Job(queue, name, JSON.parse(json))` would store; a
 * test holds the two equal.
 */
export class EncodedJob extends Job {
  readonly #json: string;

  constructor(queue: Queue, name: string, json: string, opts: JobsOptions, id: string) {
    super(queue, name, undefined, opts, id);
    this.#json = json;
  }

  override asJSON(): JobJson {
    const json = super.asJSON();
    json.data = this.#json;
    return json;
  }
}
