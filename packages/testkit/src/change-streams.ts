import type {
  ChangeStreamDocument,
  ChangeStreamOptions,
  Db,
  Document,
  MongoClient,
  Timestamp,
} from 'mongodb';

/**
 * The server's own record of every change since `from` (what a test compares its results with):
 * a fresh change stream on `scope` (a client or a database), read until `quietMs` pass without one.
 */
export async function changesSince(
  scope: MongoClient | Db,
  from: Timestamp,
  pipeline: Document[] = [],
  quietMs = 1500,
  /** More options of the stream (the images a routing key reads: fullDocument, …). */
  options: ChangeStreamOptions = {},
): Promise<ChangeStreamDocument[]> {
  const stream = scope.watch(pipeline, {
    ...options,
    startAtOperationTime: from,
    maxAwaitTimeMS: 200,
  });
  const events: ChangeStreamDocument[] = [];
  let quietSince = Date.now();
  while (Date.now() - quietSince < quietMs) {
    const change = await stream.tryNext();
    if (change) {
      events.push(change);
      quietSince = Date.now();
    }
  }
  await stream.close();
  return events;
}
