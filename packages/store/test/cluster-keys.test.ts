/**
 * Key names on a Redis Cluster: a worker's queues, the watermarks in them and its own keys share
 * the hash tag of its name; an ingest's keys that of its id; the ring and its fence copy one tag.
 * (A file of its own: the choice is
 * made once per process.)
 */
import { expect, it } from 'vitest';
import {
  deadLetterQueueName,
  eventQueueName,
  hashTagsInUse,
  ingestKeys,
  pauseKeys,
  queueKeys,
  ringKey,
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
    ingest.queueFence(queue),
    ...Object.values(pauseKeys('changeq', { kind: 'worker', name: 'north' })),
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
  const perIngest = [
    ingest.token,
    ingest.snapshot,
    ingest.lease,
    ingest.fence,
    ingest.members,
    ...Object.values(pauseKeys('changeq', { kind: 'ingest', id: 'main' })),
  ];
  expect(new Set(perIngest.map(hashed))).toEqual(new Set(['main']));
  // The ring's compare-and-set script takes the ring and the leader's fence copy for it.
  expect(new Set([ringKey('changeq'), ingest.ringFence].map(hashed))).toEqual(new Set(['ring']));
  expect(() => useHashTags(false)).toThrow(/already made for a Redis Cluster/);
});
