/**
 * Refuses at start, in one line with the setting that fixes it, a routing key (`[routing]` in
 * workers.toml) that the ingest could not read on every operation with the settings given:
 *
 * - `fullDocument.<path>` reads the document after the event: inserts and replaces carry it,
 *   updates only with FULL_DOCUMENT set (updateLookup, whenAvailable, required); deletes carry
 *   only the document before the event, with FULL_DOCUMENT_BEFORE_CHANGE set (which also shows
 *   an update that changes the key);
 * - `documentKey.<field>` and `namespace` need nothing;
 * - PIPELINE must not remove or rewrite the field (nor the image that holds it).
 */
import type { Document } from 'mongodb';
import { UserError, type RoutingRule } from '@changeq/shared';
import { pipelineTouches } from './user-pipeline.js';

export function checkRoutingSettings(
  rules: ReadonlyMap<string, RoutingRule>,
  settings: {
    /** FULL_DOCUMENT and FULL_DOCUMENT_BEFORE_CHANGE (config.ts reads them; no import back). */
    fullDocument: string;
    fullDocumentBeforeChange: string;
    pipeline: readonly Document[] | null;
    file: string;
  },
): void {
  for (const [ns, rule] of rules) {
    if (rule.kind !== 'field') continue;
    const what = `[routing] "${ns}" = "${rule.path}" in ${settings.file}`;
    if (rule.root === 'fullDocument' && settings.fullDocument === 'default') {
      throw new UserError(
        `${what} cannot be read on updates: their events carry no fullDocument with FULL_DOCUMENT=default`,
        'set FULL_DOCUMENT=updateLookup (or whenAvailable/required with changeStreamPreAndPostImages enabled on the collection)',
      );
    }
    if (rule.root === 'fullDocument' && settings.fullDocumentBeforeChange === 'off') {
      throw new UserError(
        `${what} cannot be read on deletes (nor a change of the key seen on updates): their events carry no fullDocumentBeforeChange with FULL_DOCUMENT_BEFORE_CHANGE=off`,
        'set FULL_DOCUMENT_BEFORE_CHANGE=required (or whenAvailable) and enable changeStreamPreAndPostImages on the collection (collMod)',
      );
    }
    const stage = pipelineTouches(settings.pipeline, [
      rule.path,
      ...(rule.root === 'fullDocument' ? [`fullDocumentBeforeChange.${rule.parts.join('.')}`] : []),
    ]);
    if (stage !== undefined) {
      throw new UserError(
        `PIPELINE stage ${stage.index + 1} ${stage.problem}, which ${what} routes by`,
        `keep ${rule.path} in every event, or route ${ns} by "document"`,
      );
    }
  }
}
