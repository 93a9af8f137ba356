/**
 * MONGODB_URI: refused with one line when the driver could not use it (an unknown option,
 * `tls=maybe`, an unescaped `@` in the password...), so no process meets a MongoParseError later.
 * The driver's own parser decides what it accepts; our checks before it give clearer wording and
 * keep credentials out of the message.
 */
import { createRequire } from 'node:module';
import type * as Mongo from 'mongodb';
import type { MongoClient, MongoClientOptions } from 'mongodb';
import { UserError } from '../errors.js';
import { redactText, redactUri } from './redact.js';
import { credentialsProblem, splitUri } from './uri-parts.js';

export const MONGO_EXAMPLE = 'mongodb://127.0.0.1:27017/?replicaSet=rs0';

/**
 * The driver, loaded when first needed: a process that checks a string without ever connecting
 * (the ingest's main thread, whose reader thread connects) must not hold it.
 */
const require = createRequire(import.meta.url);
function driver(): typeof Mongo {
  return require('mongodb') as typeof Mongo;
}

/**
 * Why a MongoDB connection string is unusable, or undefined. Never quotes a password.
 * `driver: false` leaves out the driver's own parse (see driverProblem), for a process that does
 * not load the driver: whichever thread creates the client must then call driverProblem.
 */
export function mongoUriProblem(
  uri: string,
  { driver = true }: { driver?: boolean } = {},
): string | undefined {
  const scheme = /^(mongodb|mongodb\+srv):\/\//.exec(uri);
  if (scheme === null) {
    return /^mongodb(\+srv)?:\/\//i.test(uri)
      ? 'has its scheme in capitals, where the driver only takes mongodb:// or mongodb+srv://'
      : 'does not start with mongodb:// or mongodb+srv://';
  }
  const { userinfo, rest } = splitUri(uri);
  const query = uri.indexOf('?');
  if (query >= 0 && uri.lastIndexOf('@') > query && !uri.slice(0, query).includes('@')) {
    return 'has an "@" in an option value, where it must be written %40';
  }
  // The driver reads a password up to the first '@' and refuses ':' in it.
  const credentials = credentialsProblem(uri, { colonInPassword: false });
  if (credentials !== undefined) return credentials;
  if (userinfo === '') return 'has an "@" with no user name before it';
  const authorityEnd = rest.search(/[/?]/);
  const hosts = authorityEnd < 0 ? rest : rest.slice(0, authorityEnd);
  if (hosts === '' || hosts.split(',').some((host) => host === '')) return 'has an empty host';
  const isSrv = scheme[1] === 'mongodb+srv';
  if (isSrv && hosts.includes(',')) return 'is a mongodb+srv:// string with more than one host';
  if (isSrv && /:\d*$/.test(hosts.replace(/\[[^\]]*\]/g, ''))) {
    return 'is a mongodb+srv:// string with a port (SRV records supply the ports)';
  }
  for (const host of hosts.split(',')) {
    const port = /:(\d*)$/.exec(host.replace(/\[[^\]]*\]/g, ''))?.[1];
    if (port !== undefined && (port === '' || Number(port) < 1 || Number(port) > 65535)) {
      return `has the invalid port ${JSON.stringify(port)} (ports are 1 to 65535)`;
    }
  }
  return driver ? driverProblem(uri) : undefined;
}

/** The driver's words for a string it refuses (it parses without connecting). */
export function driverProblem(uri: string): string | undefined {
  try {
    new (driver().MongoClient)(uri);
    return undefined;
  } catch (error) {
    return `is refused by the MongoDB driver: ${driverMessage(error, uri)}`;
  }
}

/**
 * An error message of the driver, fit to print: one line, URIs redacted, and the user name and
 * password of `uri` removed wherever the driver quoted them.
 */
export function driverMessage(error: unknown, uri: string): string {
  let message = (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
  message = redactText(message.replace(/(unescaped characters).*$/, '$1'));
  const { userinfo } = splitUri(uri);
  if (userinfo !== undefined) {
    for (const part of [userinfo, ...userinfo.split(':').slice(1)]) {
      for (const form of new Set([part, safeDecode(part)])) {
        if (form.length >= 3) message = message.split(form).join('***');
      }
    }
  }
  return message;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * A MongoClient, or a UserError naming the setting when the driver refuses the string or its
 * options: what every process uses instead of `new MongoClient`.
 */
export function createMongoClient(
  uri: string,
  options: MongoClientOptions = {},
  setting = 'MONGODB_URI',
): MongoClient {
  try {
    return new (driver().MongoClient)(uri, options);
  } catch (error) {
    throw new UserError(
      `${setting}=${JSON.stringify(redactUri(uri))} is not usable: ${driverMessage(error, uri)}`,
      `correct ${setting} (a connection string such as ${MONGO_EXAMPLE}; see the MongoDB connection string documentation for its options)`,
    );
  }
}

export interface MongoFailure {
  problem: string;
  fix: string;
  /** A setting to correct: retrying cannot help. */
  permanent: boolean;
}

/** Explains `error`, met while connecting to the MongoDB of `uri` (named by `setting`). */
export function describeMongoFailure(
  error: unknown,
  uri: string,
  setting = 'MONGODB_URI',
): MongoFailure {
  const message = driverMessage(error, uri);
  const at = redactUri(uri);
  const code = (error as { code?: unknown } | undefined)?.code;
  if (code === 18 || /Authentication failed|AuthenticationFailed/i.test(message)) {
    return {
      problem: `MongoDB at ${at} refused the user name or password of ${setting} (${message})`,
      fix: `correct them in ${setting} (mongodb://user:password@host/?authSource=admin, percent-encoding / @ : % in them), or the user on the server`,
      permanent: true,
    };
  }
  if (code === 13 || /requires authentication|not authorized/i.test(message)) {
    return {
      problem: `MongoDB at ${at} refused a command to the user of ${setting} (${message})`,
      fix: `put the credentials of a user with the needed roles in ${setting} (see docs/configuration.md)`,
      permanent: true,
    };
  }
  return {
    problem: `cannot reach MongoDB at ${at} (${message || 'no answer'})`,
    fix: `check ${setting} and that the server is running and reachable (npm run stack -- up starts a local one)`,
    permanent: false,
  };
}
