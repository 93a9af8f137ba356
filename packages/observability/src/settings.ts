import { UserError, envReader } from '@changeq/shared';

export interface HttpSettings {
  /** 0 = no HTTP server. */
  port: number;
  host: string;
}

/**
 * HTTP_PORT (0 = off, the default) and HTTP_HOST (default 127.0.0.1), with flag values (strings
 * as typed, e.g. from `--http-port`) taking precedence over the environment.
 */
export function httpSettings(
  env: NodeJS.ProcessEnv,
  flags: { port?: string | undefined; host?: string | undefined } = {},
): HttpSettings {
  const merged: NodeJS.ProcessEnv = { ...env };
  if (flags.port !== undefined) merged.HTTP_PORT = flags.port;
  if (flags.host !== undefined) merged.HTTP_HOST = flags.host;
  const read = envReader(merged);
  const port = read.int('HTTP_PORT', { default: 0, min: 0, max: 65_535 });
  const host = read.string('HTTP_HOST', { default: '127.0.0.1' });
  if (/\s|\/|^\[|\]$/.test(host)) {
    throw new UserError(
      `HTTP_HOST="${host}" is not a host name or IP address`,
      'set HTTP_HOST to an address of this machine such as 127.0.0.1, 0.0.0.0 or ::',
    );
  }
  return { port, host };
}
