/** PIPELINE: which stages are taken, and the one line for each that would break routing or resuming. */
import { describe, expect, test } from 'vitest';
import { UserError } from '@changeq/shared';
import { parsePipeline, refuseSnapshotWithReshaping, reshapes } from '../src/user-pipeline.js';

const refusal = (raw: string) => {
  try {
    parsePipeline(raw);
  } catch (error) {
    expect(error).toBeInstanceOf(UserError);
    return (error as Error).message;
  }
  return null;
};

describe('PIPELINE', () => {
  test('takes the stages MongoDB allows after $changeStream when they keep what changeq needs', () => {
    const stages = [
      { $match: { operationType: { $ne: 'delete' } } },
      { $unset: ['fullDocument.ssn', 'fullDocumentBeforeChange.ssn'] },
      { $project: { 'fullDocument.card': 0 } },
      { $set: { 'fullDocument.region': 'eu' } },
      { $addFields: { seenBy: 'changeq' } },
      { $replaceWith: { $mergeObjects: ['$$ROOT', { tenant: '$fullDocument.tenant' }] } },
      { $replaceRoot: { newRoot: { $mergeObjects: ['$$ROOT', { x: 1 }] } } },
      { $redact: { $cond: [true, '$$DESCEND', '$$PRUNE'] } },
      {
        $project: {
          _id: 1,
          ns: 1,
          documentKey: 1,
          operationType: 1,
          clusterTime: 1,
          'fullDocument.total': 1,
        },
      },
    ];
    expect(parsePipeline(JSON.stringify(stages))).toEqual(stages);
    expect(parsePipeline(undefined)).toBeNull();
    expect(parsePipeline('  ')).toBeNull();
  });

  test.each([
    ['[{"$unset": "documentKey"}]', /stage 1 removes documentKey/],
    ['[{"$unset": ["fullDocument.a", "ns.coll"]}]', /stage 1 removes ns\.coll/],
    ['[{"$project": {"_id": 0}}]', /stage 1 removes _id/],
    ['[{"$project": {"clusterTime": false}}]', /removes clusterTime/],
    ['[{"$project": {"fullDocument": 1}}]', /removes ns \(an inclusion \$project keeps only/],
    [
      '[{"$project": {"_id": 1, "ns": 1, "documentKey": 1, "operationType": {"$literal": "x"}, "clusterTime": 1}}]',
      /computes operationType/,
    ],
    ['[{"$set": {"operationType": "insert"}}]', /overwrites operationType/],
    ['[{"$addFields": {"documentKey._id": 1}}]', /overwrites documentKey\._id/],
    ['[{"$replaceWith": "$fullDocument"}]', /replaces the event.*\$mergeObjects/],
    ['[{"$replaceWith": {"$mergeObjects": ["$$ROOT", {"ns": "x"}]}}]', /replaces the event/],
    ['[{"$group": {"_id": null}}]', /stage 1 is \$group, which a change stream does not take/],
    ['[{"$match": {}, "$project": {"a": 1}}]', /has 2 keys/],
    ['[{"$match": {}}, 3]', /stage 2 is not a stage/],
    ['{"$match": {}}', /must be a JSON array/],
    ['[{"$match": ', /not valid Extended JSON/],
  ])('refuses %s with one line naming the problem', (raw, message) => {
    const text = refusal(raw);
    expect(text).toMatch(message);
    expect(text).not.toContain('\n');
  });

  test('reshapes: anything but $match changes what handlers see', () => {
    expect(reshapes(null)).toBe(false);
    expect(reshapes([{ $match: { a: 1 } }])).toBe(false);
    expect(reshapes([{ $match: { a: 1 } }, { $unset: 'fullDocument.ssn' }])).toBe(true);
  });

  test('a snapshot copy is refused under a reshaping pipeline, not under filters', () => {
    expect(() =>
      refuseSnapshotWithReshaping([{ $match: { a: 1 } }], 'changeq resync'),
    ).not.toThrow();
    expect(() => refuseSnapshotWithReshaping(null, 'changeq resync')).not.toThrow();
    expect(() =>
      refuseSnapshotWithReshaping([{ $unset: 'fullDocument.ssn' }], 'changeq resync'),
    ).toThrow(/changeq resync with a PIPELINE that reshapes events/);
  });
});
