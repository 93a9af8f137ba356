/**
 * Alternative (c): mongochangestream with BullMQ, wired as its README shows: `initSync(redis,
 * collection)`, then `processChangeStream(processRecords)` with its defaults (batches of up to
 * 500 events, flushed at the latest after 30 s; it keeps the resume token in Redis itself). The
 * callback adds each batch with one `addBulk` per queue, the token as job id, routed as above.
 * 0.55.0, not the newest (0.64.0): 0.64.0 needs obj-walker ^2.5.0, which the npm registry
 * reachable here does not have, so it does not install.
 */
import { initSync } from 'mongochangestream';
import { MongoClient, type ChangeStreamDocument } from 'mongodb';
import { exitOnSigterm, pipelineEnv } from './env.js';
import { userQueues } from './queues.js';

const env = pipelineEnv();
const client = await MongoClient.connect(env.mongodbUri);
const { redis, addBatch } = userQueues(env);

const processRecords = (docs: ChangeStreamDocument[]) => addBatch(docs);

const sync = initSync(redis, client.db(env.db).collection(env.coll));
const changeStream = await sync.processChangeStream(processRecords);
exitOnSigterm(async () => {
  await changeStream.stop();
  await client.close();
});
changeStream.start();
