/**
 * Splits a connection string (`scheme://[userinfo@]hosts[/path][?query][#fragment]`) the way a
 * person meant it, even when the user name or password holds characters that should have been
 * percent-encoded (`/`, `?`, `#`, `@`, `:`). Redaction masks what this calls the userinfo, and
 * the settings refuse a userinfo holding such characters, so both agree on where it ends.
 *
 * The userinfo ends at the last `@`: host names cannot hold one, and a password can. An `@` in
 * an option value (`appName=me@x`) then makes it take in hosts and options too; the MongoDB
 * driver refuses such strings anyway, and redaction then masks more rather than less.
 */

export interface UriParts {
  /** `mongodb://`, `rediss://`, ... or '' when the text has no scheme. */
  scheme: string;
  /** The raw text before the last `@`, or undefined when there is none. */
  userinfo: string | undefined;
  /** Hosts, path, query and fragment. */
  rest: string;
}

const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

export function splitUri(uri: string): UriParts {
  const scheme = SCHEME.exec(uri)?.[0] ?? '';
  const text = uri.slice(scheme.length);
  const at = text.lastIndexOf('@');
  if (at < 0) return { scheme, userinfo: undefined, rest: text };
  return { scheme, userinfo: text.slice(0, at), rest: text.slice(at + 1) };
}

/** Whether the scheme is Redis' (where a lone user name is taken for a password by some tools). */
export function isRedisScheme(scheme: string): boolean {
  return /^rediss?(\+cluster)?:\/\/$/i.test(scheme);
}

/**
 * Why the credentials of a connection string cannot be read unambiguously, or undefined: a
 * character that must be percent-encoded in a user name or password, or a `%` that does not
 * start an encoded byte. The answer never quotes the credentials.
 */
export function credentialsProblem(
  uri: string,
  options: { colonInPassword: boolean },
): string | undefined {
  const { userinfo } = splitUri(uri);
  if (userinfo === undefined) return undefined;
  const colon = userinfo.indexOf(':');
  const password = colon < 0 ? '' : userinfo.slice(colon + 1);
  const found = new Set<string>();
  for (const char of ['@', '/', '?', '#']) if (userinfo.includes(char)) found.add(`"${char}"`);
  if (/\s/.test(userinfo)) found.add('a space');
  if (!options.colonInPassword && password.includes(':')) found.add('":"');
  if (/%(?![0-9A-Fa-f]{2})/.test(userinfo)) found.add('"%"');
  if (found.size === 0) return undefined;
  return `has a user name or password holding ${[...found].join(' and ')} as is, where such characters must be percent-encoded (@ as %40, / as %2F, : as %3A, ? as %3F, # as %23, % as %25, a space as %20)`;
}
