// Users live where MongoDB keeps them: documents in admin.system.users, `_id` "<db>.<user>",
// with SCRAM-SHA-256 credentials (never the password). Being ordinary documents, they are
// logged, compacted and replayed with everything else, and no change stream sees them (admin
// is an internal database).
import { UUID } from 'bson';
import { canonicalKey } from '../bson/canonical.js';
import { toNumber } from '../bson/types.js';
import type { Doc } from '../bson/types.js';
import type { Engine } from '../storage/engine.js';
import { DirectView } from '../storage/view.js';
import { passwordMatches, SCRAM_SHA_256, scramCredentials } from './scram.js';
import type { ScramCredentials } from './scram.js';

export const USERS_DB = 'admin';
export const USERS_COLLECTION = 'system.users';

export interface UserRole {
  role: string;
  db: string;
}

/** A user given at startup (CLI --user, option auth.users): a root user of `db` (admin). */
export interface StartupUser {
  user: string;
  password: string;
  db?: string;
}

export function userId(db: string, user: string): string {
  return `${db}.${user}`;
}

export function findUser(engine: Engine, db: string, user: string): Doc | undefined {
  return engine.catalog.get(USERS_DB, USERS_COLLECTION)?.docs.get(canonicalKey(userId(db, user)));
}

export function scramCredentialsOf(user: Doc | undefined): ScramCredentials | undefined {
  const c = (user?.credentials as Doc | undefined)?.[SCRAM_SHA_256] as Doc | undefined;
  if (!c) return undefined;
  // Read back from the log, numbers are BSON Int32 objects.
  return {
    iterationCount: toNumber(c.iterationCount),
    salt: String(c.salt),
    storedKey: String(c.storedKey),
    serverKey: String(c.serverKey),
  };
}

export function userCount(engine: Engine): number {
  return engine.catalog.get(USERS_DB, USERS_COLLECTION)?.docs.size ?? 0;
}

export function allUsers(engine: Engine): Doc[] {
  return [...(engine.catalog.get(USERS_DB, USERS_COLLECTION)?.docs.values() ?? [])];
}

export function newUserDoc(
  db: string,
  user: string,
  password: string,
  roles: UserRole[],
  customData?: Doc,
): Doc {
  const doc: Doc = {
    _id: userId(db, user),
    userId: new UUID(),
    user,
    db,
    credentials: { [SCRAM_SHA_256]: scramCredentials(password) },
    roles,
  };
  if (customData) doc.customData = customData;
  return doc;
}

/**
 * Make sure each startup user exists with its password (a root role in its database). A user
 * kept from an earlier run with the same password is left as it is.
 */
export function ensureStartupUsers(engine: Engine, users: StartupUser[]): void {
  const view = new DirectView(engine);
  for (const u of users) {
    const db = u.db ?? 'admin';
    const existing = findUser(engine, db, u.user);
    const creds = scramCredentialsOf(existing);
    if (existing && creds && passwordMatches(u.password, creds)) continue;
    const roles = [{ role: 'root', db: 'admin' }];
    const doc = newUserDoc(db, u.user, u.password, roles);
    if (existing) {
      view.update(
        USERS_DB,
        USERS_COLLECTION,
        existing,
        { ...doc, userId: existing.userId },
        undefined,
      );
    } else {
      view.insert(USERS_DB, USERS_COLLECTION, doc);
    }
  }
  engine.flush();
}
