import { BSON, UserError } from '@changeq/shared';

/**
 * A setting that holds Extended JSON (MATCH, PIPELINE), parsed relaxed as the driver would send
 * it: undefined when unset, one line naming the setting when it does not parse.
 */
export function readExtendedJson(name: string, raw: string | undefined, fix: string): unknown {
  if (raw === undefined || raw.trim() === '') return undefined;
  try {
    return BSON.EJSON.parse(raw, { relaxed: true });
  } catch (error) {
    throw new UserError(`${name} is not valid Extended JSON (${(error as Error).message})`, fix);
  }
}
