/**
 * Key names on a Redis Cluster: a worker's queues, the watermarks in them and its own keys share
 * the hash tag of its name; an ingest's keys that of its id. (A file of its own: the choice is
 * made once per process.)
 */
import { expect, it } from 'vitest';
import {
  deadLetterQueueName,
  eventQueueName,
  hashTagsInUse,
  ingestKeys,
  queueKeys,
  useHashTags,
  workerKeys,
} from '../src/index.js';

/** The part of a key Redis Cluster hashes: between the first `{` and the next `}`. */
function hashed(key: string): string {
  const open = key.indexOf('{');
  const close = key.indexOf('}', open + 1);
  return open >= 0 && close > open + 1 ? key.slice(open + 1, close) : key;
}

it('names every key of a worker and of an ingest in one slot each, and keeps the choice', () => {
  useHashTags(true);
  expect(hashTagsInUse()).toBe(true);
  const queue = eventQueueName('north');
  expect(queue).toBe('{north}');
  const worker = workerKeys('changeq', 'north');
  const ingest = ingestKeys('changeq', 'main');
  const perWorker = [
    queueKeys('changeq', queue).job('42'),
    queueKeys('changeq', deadLetterQueueName('north')).job('42'),
    ingest.watermark(queue),
    ingest.watermark(queue, 'snapshot'),
    worker.lease,
    worker.fence,
    worker.blocked,
    worker.parked('doc'),
    worker.parkSeq,
    worker.commands,
    worker.handoff(3),
    worker.held,
  ];
  expect(new Set(perWorker.map(hashed))).toEqual(new Set(['north']));
  expect(new Set([ingest.token, ingest.snapshot, ingest.lease].map(hashed))).toEqual(
    new Set(['main']),
  );
  expect(() => useHashTags(false)).toThrow(/already made for a Redis Cluster/);
});
