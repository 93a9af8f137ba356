/**
 * Tracing (issue 13 point 8): with the standard OTEL_* variables, a real ingest and a real worker
 * send their spans over OTLP/HTTP to a receiver this test runs; each handler span's parent is
 * the enqueue span of its own event, named by the traceparent the ingest put in that job's data.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { MongoClient, ObjectId } from 'mongodb';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startStack, type RunningStack } from '@changeq/stack';
import {
  CallLog,
  endProcesses,
  recordingHandlersPath,
  startApp,
  tempDir,
  waitFor,
  workersFile,
  type TestProcess,
} from '@changeq/testkit';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  startTimeUnixNano: string;
  attributes?: { key: string; value: { stringValue?: string; intValue?: string | number } }[];
}
interface Received extends OtlpSpan {
  service: string;
}

const WORKERS = workersFile('workers = ["alpha"]\n');
const RECORD = `${tempDir('changeq-trace-')}/calls.jsonl`;
const spans: Received[] = [];
let receiver: Server;
let stack: RunningStack;
let mongo: MongoClient;
let redis: Redis;
const processes: TestProcess[] = [];

/** An OTLP/HTTP receiver (JSON, as @opentelemetry/exporter-trace-otlp-http sends it). */
function receive(body: string): void {
  const request = JSON.parse(body) as {
    resourceSpans: {
      resource: { attributes: { key: string; value: { stringValue?: string } }[] };
      scopeSpans: { spans: OtlpSpan[] }[];
    }[];
  };
  for (const resource of request.resourceSpans) {
    const service =
      resource.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
    for (const scope of resource.scopeSpans)
      for (const span of scope.spans) spans.push({ ...span, service });
  }
}

const attribute = (span: OtlpSpan, key: string) =>
  span.attributes?.find((a) => a.key === key)?.value.stringValue;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      receive(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/v1/traces`;
  stack = await startStack();
  mongo = new MongoClient(stack.mongodbUri);
  await mongo.connect();
  redis = new Redis(stack.redisUrl);
  const env = {
    REDIS_URL: stack.redisUrl,
    MONGODB_URI: stack.mongodbUri,
    WORKERS_FILE: WORKERS,
    QUEUE_PREFIX: 'tr',
    INGEST_ID: 'tr',
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: endpoint,
    OTEL_BSP_SCHEDULE_DELAY: '100',
  };
  const ingest = startApp('ingest', [], { ...env, WATCH: 'tr.c', MAX_AWAIT_TIME_MS: '100' });
  const worker = startApp('worker', ['--name', 'alpha', '--handlers', recordingHandlersPath()], {
    ...env,
    HTTP_PORT: '0',
    CHANGEQ_RECORD_FILE: RECORD,
  });
  processes.push(ingest, worker);
  await waitFor(() => ingest.output().includes('change stream open'), 'the ingest');
  await waitFor(
    () => worker.output().includes('active: this process holds the lease'),
    'the worker',
  );
});
afterAll(async () => {
  await endProcesses(processes.splice(0));
  redis?.disconnect();
  await mongo?.close();
  await stack?.stop();
  await new Promise((resolve) => receiver?.close(resolve));
});

test('each handler span is a child of the enqueue span of its own event, across the queue', async () => {
  const c = mongo.db('tr').collection('c');
  // Two batches: one insertMany, then updates one by one.
  const ids = Array.from({ length: 4 }, () => new ObjectId());
  await c.insertMany(ids.map((_id) => ({ _id })));
  for (const _id of ids.slice(0, 2)) await c.updateOne({ _id }, { $set: { n: 1 } });
  const calls = new CallLog(RECORD);
  await waitFor(() => {
    calls.read();
    return calls.calls.filter((call) => call.ph === 'e').length === 6;
  }, 'six handler calls');
  const handlerSpans = () => spans.filter((s) => s.name === 'changeq.handler');
  // Each process sends its spans in its own time: wait for the ingest's parents too.
  await waitFor(
    () =>
      handlerSpans().length === 6 &&
      handlerSpans().every((h) => spans.some((s) => s.spanId === h.parentSpanId)),
    () => `six handler spans and their parents (have ${spans.map((s) => s.name).join(', ')})`,
  );

  const byId = new Map(spans.map((s) => [s.spanId, s]));
  for (const handler of handlerSpans()) {
    expect(handler.service).toBe('changeq-worker');
    const jobId = attribute(handler, 'changeq.job_id')!;
    // The job's own data names the enqueue span the handler span hangs under.
    const data = JSON.parse((await redis.hget(`tr:alpha:${jobId}`, 'data'))!) as {
      traceparent?: string;
    };
    const [, traceId, spanId] =
      /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/.exec(data.traceparent ?? '') ?? [];
    expect(handler.traceId).toBe(traceId);
    expect(handler.parentSpanId).toBe(spanId);
    const enqueue = byId.get(spanId!);
    expect(enqueue?.name).toBe('changeq.enqueue');
    expect(enqueue?.service).toBe('changeq-ingest');
    expect(byId.get(enqueue!.parentSpanId!)?.name).toBe('changeq.read');
    const wait = spans.find(
      (s) => s.name === 'changeq.wait' && attribute(s, 'changeq.job_id') === jobId,
    );
    expect(wait?.parentSpanId).toBe(spanId);
    expect(BigInt(wait!.startTimeUnixNano)).toBeLessThanOrEqual(BigInt(handler.startTimeUnixNano));
  }
  // The insertMany and the two updates are distinct batches: more than one enqueue span.
  const parents = new Set(handlerSpans().map((s) => s.parentSpanId));
  expect(parents.size).toBeGreaterThan(1);
});
