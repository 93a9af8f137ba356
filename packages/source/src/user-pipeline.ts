/**
 * PIPELINE: the stages a user adds after `$changeStream` (MongoDB allows `$match`, `$project`,
 * `$addFields`/`$set`, `$unset`, `$replaceRoot`/`$replaceWith` and `$redact` there), checked at
 * start so that none removes or rewrites what routing and resuming need: the event's `_id` (its
 * resume token), `ns`, `documentKey` (`_id` routes the event), `operationType` and `clusterTime`.
 * What cannot be proven from the stage alone (`$redact`) is checked on each event by the planner.
 */
import type { Document } from 'mongodb';
import { UserError } from '@changeq/shared';
import { readExtendedJson } from './extended-json-setting.js';

export const PIPELINE_STAGES = [
  '$match',
  '$project',
  '$addFields',
  '$set',
  '$unset',
  '$replaceRoot',
  '$replaceWith',
  '$redact',
] as const;

/** The fields of a change event that routing and resuming read. */
export const NEEDED_FIELDS = ['_id', 'ns', 'documentKey', 'operationType', 'clusterTime'] as const;

const EXAMPLE = `PIPELINE='[{"$unset": "fullDocument.ssn"}]'`;

/** Parses PIPELINE (an Extended JSON array of stages); null when unset. */
export function parsePipeline(raw: string | undefined): Document[] | null {
  const parsed = readExtendedJson('PIPELINE', raw, `give an array of stages, e.g. ${EXAMPLE}`);
  if (parsed === undefined) return null;
  if (!Array.isArray(parsed)) {
    throw new UserError('PIPELINE must be a JSON array of stages', `e.g. ${EXAMPLE}`);
  }
  parsed.forEach((stage: unknown, index) => {
    const problem = stageProblem(stage);
    if (problem !== undefined) {
      throw new UserError(
        `PIPELINE stage ${index + 1} ${problem}`,
        `keep ${NEEDED_FIELDS.join(', ')} as the change stream gives them (they route and resume each event); redact or add other fields, e.g. ${EXAMPLE}`,
      );
    }
  });
  return parsed as Document[];
}

/**
 * Refuses a snapshot copy (`what`: START_AT=snapshot, changeq resync) under a PIPELINE that
 * reshapes events: the copy reads documents, not change events, so a redaction would not apply.
 */
export function refuseSnapshotWithReshaping(
  pipeline: readonly Document[] | null,
  what: string,
): void {
  if (!reshapes(pipeline)) return;
  throw new UserError(
    `${what} with a PIPELINE that reshapes events: the snapshot copy reads documents, not change events, so the pipeline (a redaction, say) would not apply to it`,
    'stream without a snapshot copy (START_AT=now or a time, changeq token set --at), or keep only $match stages in PIPELINE',
  );
}

/** Whether a pipeline changes the events' shape (more than filtering them). */
export function reshapes(pipeline: readonly Document[] | null): boolean {
  return (pipeline ?? []).some((stage) => Object.keys(stage)[0] !== '$match');
}

/** Why `stage` is refused, or undefined. */
function stageProblem(stage: unknown): string | undefined {
  if (stage === null || typeof stage !== 'object' || Array.isArray(stage)) {
    return 'is not a stage (an object such as {"$match": {...}})';
  }
  const keys = Object.keys(stage);
  if (keys.length !== 1) return `has ${keys.length} keys; a stage has exactly one, its name`;
  const name = keys[0]!;
  const spec = (stage as Document)[name] as unknown;
  if (!(PIPELINE_STAGES as readonly string[]).includes(name)) {
    return `is ${name}, which a change stream does not take after $changeStream (it takes ${PIPELINE_STAGES.join(', ')})`;
  }
  switch (name) {
    case '$project':
      return projectProblem(spec);
    case '$unset': {
      const paths = typeof spec === 'string' ? [spec] : spec;
      if (!Array.isArray(paths) || !paths.every((p) => typeof p === 'string')) {
        return '($unset) takes a field path or an array of them';
      }
      return touched(paths as string[], 'removes');
    }
    case '$addFields':
    case '$set':
      if (!isObject(spec)) return `(${name}) takes an object of fields`;
      return touched(Object.keys(spec), 'overwrites');
    case '$replaceRoot':
    case '$replaceWith':
      return replaceProblem(name === '$replaceRoot' && isObject(spec) ? spec['newRoot'] : spec);
    default:
      return undefined;
  }
}

/** The needed fields among `paths` (a path equal to one, inside one, or holding one). */
function touched(paths: readonly string[], verb: string): string | undefined {
  const hit = paths.find((path) =>
    NEEDED_FIELDS.some((field) => path === field || path.startsWith(`${field}.`)),
  );
  return hit === undefined ? undefined : `${verb} ${hit}`;
}

function projectProblem(spec: unknown): string | undefined {
  if (!isObject(spec)) return '($project) takes an object';
  const entries = Object.entries(spec);
  const excluded = (value: unknown) => value === 0 || value === false;
  const isExclusion = entries.every(([key, value]) => key === '_id' || excluded(value));
  if (isExclusion) {
    return touched(
      entries.filter(([, value]) => excluded(value)).map(([key]) => key),
      'removes',
    );
  }
  // An inclusion projection keeps only what it names (and _id unless told otherwise).
  for (const field of NEEDED_FIELDS) {
    const value = field === '_id' && !('_id' in spec) ? 1 : spec[field];
    const keptWhole = value === 1 || value === true;
    const keptInParts = field === 'documentKey' && spec['documentKey._id'] === 1;
    if (!keptWhole && !keptInParts) {
      return value === undefined || excluded(value)
        ? `removes ${field} (an inclusion $project keeps only the fields it names)`
        : `computes ${field} instead of keeping it`;
    }
  }
  return touched(
    entries
      .filter(([key]) => !(NEEDED_FIELDS as readonly string[]).includes(key))
      .map(([key]) => key)
      .filter((key) => key !== 'documentKey._id'),
    'rewrites',
  );
}

/** A new root keeps the event only as `{ $mergeObjects: ['$$ROOT', { …other fields }] }`. */
function replaceProblem(newRoot: unknown): string | undefined {
  const merge = isObject(newRoot) ? newRoot['$mergeObjects'] : undefined;
  if (
    Array.isArray(merge) &&
    merge.length === 2 &&
    merge[0] === '$$ROOT' &&
    isObject(merge[1]) &&
    touched(Object.keys(merge[1]), 'overwrites') === undefined
  ) {
    return undefined;
  }
  return `replaces the event, and changeq cannot tell that the new one keeps ${NEEDED_FIELDS.join(', ')}: write {"$replaceWith": {"$mergeObjects": ["$$ROOT", {...}]}} with other fields only`;
}

function isObject(value: unknown): value is Document {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Whether a stage's path reaches `field`: the field itself, a document holding it, or a part. */
function overlaps(path: string, field: string): boolean {
  return path === field || field.startsWith(`${path}.`) || path.startsWith(`${field}.`);
}

/**
 * The first stage of `pipeline` that removes or rewrites one of `fields` (dotted paths such as a
 * routing key's `fullDocument.customerId`), with what it does; undefined when none does. Stages
 * that passed parsePipeline only; `$redact` cannot be judged from the stage and is let through.
 */
export function pipelineTouches(
  pipeline: readonly Document[] | null,
  fields: readonly string[],
): { index: number; problem: string } | undefined {
  const hit = (paths: readonly string[], verb: string) => {
    const path = paths.find((p) => fields.some((field) => overlaps(p, field)));
    return path === undefined ? undefined : `${verb} ${path}`;
  };
  for (const [index, stage] of (pipeline ?? []).entries()) {
    const name = Object.keys(stage)[0] ?? '';
    const spec = stage[name] as unknown;
    let problem: string | undefined;
    if (name === '$unset') {
      problem = hit(typeof spec === 'string' ? [spec] : (spec as string[]), 'removes');
    } else if ((name === '$set' || name === '$addFields') && isObject(spec)) {
      problem = hit(Object.keys(spec), 'overwrites');
    } else if ((name === '$replaceRoot' || name === '$replaceWith') && isObject(spec)) {
      const merge = (name === '$replaceRoot' ? (spec['newRoot'] as Document) : spec)?.[
        '$mergeObjects'
      ] as unknown[] | undefined;
      problem = isObject(merge?.[1]) ? hit(Object.keys(merge[1]), 'overwrites') : undefined;
    } else if (name === '$project' && isObject(spec)) {
      const entries = Object.entries(spec);
      const excluded = (value: unknown) => value === 0 || value === false;
      const kept = (value: unknown) => value === 1 || value === true;
      if (entries.every(([key, value]) => key === '_id' || excluded(value))) {
        problem = hit(
          entries.filter(([, value]) => excluded(value)).map(([key]) => key),
          'removes',
        );
      } else {
        const lost = fields.find(
          (field) =>
            !entries.some(
              ([key, value]) => kept(value) && (key === field || field.startsWith(`${key}.`)),
            ),
        );
        problem =
          lost !== undefined
            ? `removes ${lost} (an inclusion $project keeps only the fields it names)`
            : hit(
                entries.filter(([, value]) => !kept(value)).map(([key]) => key),
                'rewrites',
              );
      }
    }
    if (problem !== undefined) return { index, problem };
  }
  return undefined;
}
