/**
 * The one redaction of connection strings, used by every output path (log lines, error lines,
 * `changeq status`, /readyz): passwords and secret query parameters become `***`.
 */
import { isRedisScheme, splitUri } from './uri-parts.js';

/** Query parameters whose values are secrets. */
const SECRET_PARAM = /pass|pwd|secret|token|credential|signature|^sig$|api[-_]?key|auth[-_]?key/i;

function decodeSafely(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function redactQuery(query: string): string {
  return query
    .split(/([&;])/)
    .map((part) => {
      const eq = part.indexOf('=');
      if (eq < 0) return part;
      const key = part.slice(0, eq);
      if (SECRET_PARAM.test(decodeSafely(key))) return `${key}=***`;
      // authMechanismProperties=AWS_SESSION_TOKEN:...,SERVICE_NAME:...
      return part.replace(/((?:AWS_SESSION_TOKEN|TOKEN)(?::|%3A))[^,&;]*/gi, '$1***');
    })
    .join('');
}

/**
 * Masks the credentials in a connection string: the password of `user:password@` (whatever
 * characters it holds, escaped or not: see splitUri), a lone `redis://secret@` (Redis has no
 * user without a password), and query parameters such as `password=`,
 * `tlsCertificateKeyFilePassword=` or `...TOKEN:`. The user name and hosts stay visible for
 * debugging. Never throws.
 *
 *     mongodb://app:s3cret@db1,db2/?replicaSet=rs0  ->  mongodb://app:***@db1,db2/?replicaSet=rs0
 */
export function redactUri(uri: string): string {
  try {
    const { scheme, userinfo, rest } = splitUri(String(uri));
    let out = scheme;
    if (userinfo !== undefined) {
      const colon = userinfo.indexOf(':');
      if (colon >= 0) out += `${userinfo.slice(0, colon)}:***@`;
      else if (isRedisScheme(scheme)) out += '***@';
      else out += `${userinfo}@`;
    }
    const q = rest.indexOf('?');
    if (q < 0) return out + rest;
    const hash = rest.indexOf('#', q);
    const end = hash < 0 ? rest.length : hash;
    return `${out}${rest.slice(0, q + 1)}${redactQuery(rest.slice(q + 1, end))}${rest.slice(end)}`;
  } catch {
    return '[value hidden: it could not be parsed for redaction]';
  }
}

const URI_IN_TEXT = /[A-Za-z][A-Za-z0-9+.-]*:\/\/\S*/g;

/** Masks credentials of every `scheme://...` URI inside a longer text (a log line, an error). */
export function redactText(text: string): string {
  try {
    const value = String(text);
    return value.includes('://') ? value.replace(URI_IN_TEXT, (uri) => redactUri(uri)) : value;
  } catch {
    return '[value hidden: it could not be parsed for redaction]';
  }
}
