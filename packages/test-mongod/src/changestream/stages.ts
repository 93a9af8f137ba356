// The stages that may follow $changeStream, checked in MongoDB's order: every stage is parsed
// first (an unknown name is 40324), then the pipeline is validated (a known stage a change stream
// does not allow is 20 IllegalOperation, a later $changeStream 40602, a misplaced
// $changeStreamSplitLargeEvent 7182802). Manual: "Modify Change Stream Output",
// "Large Change Stream Events".
import { isNumeric, isPlainObject } from '../bson/types.js';
import { MongoServerError } from '../errors.js';
import { compileDocStage, stageName } from '../query/pipeline.js';
import type { DocStage } from '../query/pipeline.js';

export const SPLIT_STAGE = '$changeStreamSplitLargeEvent';

/** Aggregation stage names MongoDB 7.0 recognises (anything else is 40324). */
const KNOWN_STAGES = new Set([
  '$addFields',
  '$bucket',
  '$bucketAuto',
  '$changeStream',
  SPLIT_STAGE,
  '$collStats',
  '$count',
  '$currentOp',
  '$densify',
  '$documents',
  '$facet',
  '$fill',
  '$geoNear',
  '$graphLookup',
  '$group',
  '$indexStats',
  '$limit',
  '$listLocalSessions',
  '$listSampledQueries',
  '$listSearchIndexes',
  '$listSessions',
  '$lookup',
  '$match',
  '$merge',
  '$out',
  '$planCacheStats',
  '$project',
  '$redact',
  '$replaceRoot',
  '$replaceWith',
  '$sample',
  '$search',
  '$searchMeta',
  '$set',
  '$setWindowFields',
  '$shardedDataDistribution',
  '$skip',
  '$sort',
  '$sortByCount',
  '$unionWith',
  '$unset',
  '$unwind',
  '$vectorSearch',
]);

/** Stages the manual allows in a change stream pipeline. */
const ALLOWED_IN_CHANGE_STREAM = new Set([
  '$changeStream',
  '$match',
  '$project',
  '$addFields',
  '$set',
  '$unset',
  '$replaceRoot',
  '$replaceWith',
  '$redact',
  SPLIT_STAGE,
]);

export interface FollowOnStages {
  stages: DocStage[];
  /** Stages only filter (no reshaping), so cached event bytes can be sent as they are. */
  filterOnly: boolean;
  /** The pipeline ends with $changeStreamSplitLargeEvent. */
  split: boolean;
  /** Some stage compares or computes values (so a collation could change its outcome). */
  comparesValues: boolean;
}

function isFlag(v: unknown): boolean {
  return typeof v === 'boolean' || typeof v === 'number' || isNumeric(v);
}

export function unrecognizedStage(name: string): MongoServerError {
  return new MongoServerError(40324, `Unrecognized pipeline stage name: '${name}'`);
}

/** Parse and validate the stages after `$changeStream` (`rest`). */
export function parseFollowOnStages(rest: unknown[]): FollowOnStages {
  const parsed = rest.map((s) => {
    const [name, spec] = stageName(s);
    if (!KNOWN_STAGES.has(name)) throw unrecognizedStage(name);
    if (name === SPLIT_STAGE && !(isPlainObject(spec) && Object.keys(spec).length === 0)) {
      throw new MongoServerError(7182800, `${SPLIT_STAGE} spec should be an empty object`);
    }
    return { name, spec };
  });
  for (const { name } of parsed) {
    if (!ALLOWED_IN_CHANGE_STREAM.has(name)) {
      throw new MongoServerError(20, `${name} is not permitted in a $changeStream pipeline`);
    }
  }
  parsed.forEach(({ name }, i) => {
    if (name === '$changeStream') {
      throw new MongoServerError(
        40602,
        '$changeStream is only valid as the first stage in a pipeline',
      );
    }
    if (name === SPLIT_STAGE && i !== parsed.length - 1) {
      throw new MongoServerError(7182802, `${SPLIT_STAGE} must be the last stage in the pipeline`);
    }
  });
  const stages: DocStage[] = [];
  let filterOnly = true;
  let split = false;
  let comparesValues = false;
  for (const { name, spec } of parsed) {
    if (name === SPLIT_STAGE) {
      split = true;
      continue;
    }
    const flagsOnly =
      name === '$project' && isPlainObject(spec) && Object.values(spec).every(isFlag);
    if (name !== '$unset' && !flagsOnly) comparesValues = true;
    if (name === '$redact') {
      throw new MongoServerError(
        40324,
        `Pipeline stage $redact is not supported by changeq test-mongod`,
        { extra: { unsupported: true } },
      );
    }
    if (name !== '$match') filterOnly = false;
    stages.push(compileDocStage(name, spec));
  }
  return { stages, filterOnly, split, comparesValues };
}
