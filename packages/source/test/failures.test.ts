/**
 * What a MongoDB error means for the ingest: by the driver's classes, the server's labels and its
 * codes. The unresumable codes come from a real server (the project's test server) through the
 * official driver.
 */
import {
  MongoClient,
  MongoNetworkError,
  MongoServerError,
  MongoTopologyClosedError,
  type Document,
} from 'mongodb';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startMongo, type RunningMongo } from '@changeq/stack';
import { ChangeSource, ChangeStreamClosedError } from '../src/change-source.js';
import { MongoCode, classifyMongoError } from '../src/failures.js';

describe('classifyMongoError, by type', () => {
  test('resumable errors are transient by label, or by code when they arrive unlabelled', () => {
    // Raised once a getMore held its cursor: the server labels it (the driver resumes it).
    const labelled = new MongoServerError({
      code: 50,
      errmsg: 'x',
      errorLabels: ['ResumableChangeStreamError'],
    });
    expect(classifyMongoError(labelled)).toEqual({ kind: 'transient' });
    // Raised before that, the same codes carry no label: the ingest reopens the stream itself.
    for (const code of [6, 43, 91, 134, 358, 10107, 11600, 11602, 13436, 50915]) {
      expect(classifyMongoError(new MongoServerError({ code, errmsg: 'x' }))).toEqual({
        kind: 'transient',
      });
    }
    expect(classifyMongoError(new MongoNetworkError('socket hang up'))).toEqual({
      kind: 'transient',
    });
    expect(classifyMongoError(new MongoTopologyClosedError())).toEqual({ kind: 'transient' });
    expect(classifyMongoError(new ChangeStreamClosedError())).toEqual({ kind: 'transient' });
    // A write to a socket the server had closed, which the driver lets through unwrapped.
    const ended = Object.assign(new Error('This socket has been ended by the other party'), {
      code: 'EPIPE',
    });
    expect(classifyMongoError(ended)).toEqual({ kind: 'transient' });
  });

  test('refusals that a retry would not cure, and what is not MongoDB’s', () => {
    for (const code of [13, 216]) {
      expect(classifyMongoError(new MongoServerError({ code, errmsg: 'x' }))).toEqual({
        kind: 'refused',
      });
    }
    expect(
      classifyMongoError(new MongoServerError({ code: MongoCode.BSONObjectTooLarge, errmsg: 'x' })),
    ).toEqual({ kind: 'event-too-large' });
    expect(
      classifyMongoError(
        new MongoServerError({ code: MongoCode.ChangeEventUnsplittable, errmsg: 'x' }),
      ),
    ).toEqual({ kind: 'event-unsplittable' });
    expect(
      classifyMongoError(
        new MongoServerError({
          code: MongoCode.UnrecognizedPipelineStage,
          errmsg: "Unrecognized pipeline stage name: '$changeStreamSplitLargeEvent'",
        }),
      ),
    ).toEqual({
      kind: 'stage-unsupported',
      message: "Unrecognized pipeline stage name: '$changeStreamSplitLargeEvent'",
    });
    expect(classifyMongoError(new TypeError('x is undefined'))).toBeNull();
    // The message does not count: only the type and the code do.
    expect(classifyMongoError(new Error('connection 3 to 127.0.0.1 closed'))).toBeNull();
  });
});

describe('classifyMongoError, on a real server', () => {
  let mongo: RunningMongo;
  let client: MongoClient;
  beforeAll(async () => {
    mongo = await startMongo();
    client = new MongoClient(mongo.uri);
    await client.connect();
  });
  afterAll(async () => {
    await client?.close();
    await mongo?.stop();
  });

  const source = (match: Document | null = null) =>
    new ChangeSource(client, {
      watch: { kind: 'collection', db: 'fail', coll: 'c' },
      match,
      fullDocument: 'default',
      fullDocumentBeforeChange: 'off',
      expandedEvents: false,
      splitLargeEvents: true,
      pipeline: null,
      batchSize: 100,
      maxAwaitTimeMs: 50,
    });
  const readFailure = async (stream: ChangeSource) =>
    stream.next(10).then(
      () => null,
      (error: unknown) => error,
    );

  test('a token the server cannot use is InvalidResumeToken 260; an event it cannot find, 280', async () => {
    const malformed = source();
    malformed.open({ startAfter: { _data: '82ABCDEF' } });
    const invalid = await readFailure(malformed);
    expect((invalid as MongoServerError).code).toBe(260);
    expect(classifyMongoError(invalid)).toEqual({ kind: 'unresumable', code: 260 });
    await malformed.close();

    // Another deployment's token: well formed, naming an event this server never had.
    await client.db('fail').collection('c').insertOne({ here: true });
    const other = await startMongo();
    const otherClient = new MongoClient(other.uri);
    try {
      const probe = otherClient.db('fail').collection('c').watch();
      await probe.tryNext(); // the stream is open: the insert below is in it
      await otherClient.db('fail').collection('c').insertOne({ elsewhere: true });
      const foreign = (await probe.next())._id as Document;
      await probe.close();
      const stream = source();
      stream.open({ startAfter: foreign });
      const fatal = await readFailure(stream);
      expect((fatal as MongoServerError).code).toBe(280);
      expect(classifyMongoError(fatal)).toEqual({ kind: 'unresumable', code: 280 });
      await stream.close();
    } finally {
      await otherClient.close();
      await other.stop();
    }
  });

  test('a stream the driver closed is told by its state', async () => {
    const stream = source();
    stream.open({});
    await stream.next(10);
    await (stream as unknown as { stream: { close(): Promise<void> } }).stream.close();
    expect(await readFailure(stream)).toBeInstanceOf(ChangeStreamClosedError);
  });

  test('an unreachable server is transient', async () => {
    const nowhere = new MongoClient('mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200');
    try {
      const error = await nowhere
        .db('admin')
        .command({ ping: 1 })
        .catch((e: unknown) => e);
      expect(classifyMongoError(error)).toEqual({ kind: 'transient' });
    } finally {
      await nowhere.close();
    }
  });
});
