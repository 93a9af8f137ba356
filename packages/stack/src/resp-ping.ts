import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';

export interface PingOptions {
  /** The default user's password: AUTH goes first. */
  password?: string;
  /** Speak TLS, trusting `ca` (PEM file); `cert` and `key` for a server that wants a client. */
  tls?: { ca: string; cert?: string; key?: string };
}

/** One RESP command as an array of bulk strings (any bytes, unlike the inline form). */
function command(...parts: string[]): string {
  return `*${parts.length}\r\n${parts.map((part) => `$${Buffer.byteLength(part)}\r\n${part}\r\n`).join('')}`;
}

/**
 * `PING` over a fresh socket (after `AUTH` when given a password, over TLS when asked): true on
 * `+PONG` (false while Redis is loading its AOF, or refuses the password).
 */
export function pingRedis(
  port: number,
  host = '127.0.0.1',
  timeoutMs = 1000,
  options: PingOptions = {},
): Promise<boolean> {
  return new Promise((resolve) => {
    let socket: Socket;
    try {
      socket = options.tls
        ? connectTls({
            port,
            host,
            ca: readFileSync(options.tls.ca),
            ...(options.tls.cert ? { cert: readFileSync(options.tls.cert) } : {}),
            ...(options.tls.key ? { key: readFileSync(options.tls.key) } : {}),
          })
        : connect({ port, host });
    } catch {
      resolve(false);
      return;
    }
    const replies = options.password === undefined ? 1 : 2;
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.on(options.tls ? 'secureConnect' : 'connect', () => {
      const auth = options.password === undefined ? '' : command('AUTH', options.password);
      socket.write(`${auth}${command('PING')}`);
    });
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('utf8');
      const lines = reply.split('\r\n');
      if (lines.length <= replies) return;
      done(lines[replies - 1]?.startsWith('+PONG') === true && lines[0]?.startsWith('+') === true);
    });
  });
}
