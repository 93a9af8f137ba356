import { MongoServerError } from 'mongodb';
import { UserError } from '@changeq/shared';
import { connectMongo } from '../connect.js';
import type { Settings } from '../settings.js';

const DB_NAME = /^[^/\\. "$*<>:|?]{1,63}$/;

/** `db.coll` as MongoDB allows it (the collection may contain dots). */
export function parseNamespace(raw: string): { db: string; coll: string } {
  const dot = raw.indexOf('.');
  const db = dot < 0 ? raw : raw.slice(0, dot);
  const coll = dot < 0 ? '' : raw.slice(dot + 1);
  const fix = 'name one collection as <database>.<collection>, e.g. shop.orders';
  if (dot <= 0 || coll === '') {
    throw new UserError(`"${raw}" is not a namespace (expected <database>.<collection>)`, fix);
  }
  if (!DB_NAME.test(db)) throw new UserError(`"${raw}" has an invalid database name "${db}"`, fix);
  if (coll.includes('$') || coll.includes('\0') || coll.startsWith('system.')) {
    throw new UserError(`"${raw}" names a collection that cannot have pre-images ("${coll}")`, fix);
  }
  return { db, coll };
}

export async function preimages(
  settings: Settings,
  enabled: boolean,
  namespace: string,
): Promise<void> {
  const { db, coll } = parseNamespace(namespace);
  const mongo = await connectMongo(settings);
  try {
    const database = mongo.db(db);
    const collections = await database.listCollections({}, { nameOnly: false }).toArray();
    const info = collections.find((c) => c.name === coll);
    if (!info || info.type === 'view') {
      const names = collections
        .filter((c) => c.type !== 'view' && !c.name.startsWith('system.'))
        .map((c) => c.name)
        .sort();
      throw new UserError(
        info ? `${db}.${coll} is a view, not a collection` : `there is no collection ${db}.${coll}`,
        names.length > 0
          ? `name a collection of ${db} (${names
              .slice(0, 20)
              .map((n) => `${db}.${n}`)
              .join(', ')}${names.length > 20 ? ', …' : ''})`
          : `database ${db} has no collections: check the name, or create the collection first`,
      );
    }
    const options = (info as { options?: { changeStreamPreAndPostImages?: { enabled?: boolean } } })
      .options;
    const was = options?.changeStreamPreAndPostImages?.enabled === true;
    try {
      await database.command({ collMod: coll, changeStreamPreAndPostImages: { enabled } });
    } catch (error) {
      if (error instanceof MongoServerError) {
        throw new UserError(
          `MongoDB refused to ${enabled ? 'enable' : 'disable'} pre- and post-images on ${db}.${coll} (${error.codeName ?? error.code}: ${error.message})`,
          'pre- and post-images need MongoDB 6.0 or later and a user allowed to run collMod on the collection',
        );
      }
      throw error;
    }
    const state = enabled ? 'enabled' : 'disabled';
    process.stdout.write(
      `change stream pre- and post-images are ${state} on ${db}.${coll}${was === enabled ? ' (they already were)' : ''}${
        enabled
          ? '; set FULL_DOCUMENT_BEFORE_CHANGE=whenAvailable (or required) on the ingest to put them in the events'
          : "; an ingest with FULL_DOCUMENT_BEFORE_CHANGE=required now fails on this collection's updates and deletes: use whenAvailable or off"
      }\n`,
    );
  } finally {
    await mongo.close();
  }
}
