// SCRAM-SHA-256, the server side (RFC 5802 with the SHA-256 hash of RFC 7677), as MongoDB uses
// it: passwords are SASLprep'd (RFC 4013) before hashing, user names are not; no channel
// binding; the server keeps only the salt, iteration count, StoredKey and ServerKey.
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import saslprep from '@mongodb-js/saslprep';
import { MongoServerError } from '../errors.js';

export const SCRAM_SHA_256 = 'SCRAM-SHA-256';
/** MongoDB's default scramSHA256IterationCount. */
export const DEFAULT_ITERATIONS = 15_000;
/** MongoDB salts SCRAM-SHA-256 credentials with hash size - 4 bytes. */
const SALT_BYTES = 28;

/** What a user document stores under credentials['SCRAM-SHA-256'] (all base64). */
export interface ScramCredentials {
  iterationCount: number;
  salt: string;
  storedKey: string;
  serverKey: string;
}

const hmac = (key: Buffer, data: string): Buffer => createHmac('sha256', key).update(data).digest();
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

function saltedPassword(password: string, salt: Buffer, iterations: number): Buffer {
  return pbkdf2Sync(saslprep(password), salt, iterations, 32, 'sha256');
}

export function scramCredentials(
  password: string,
  salt: Buffer = randomBytes(SALT_BYTES),
  iterations = DEFAULT_ITERATIONS,
): ScramCredentials {
  const salted = saltedPassword(password, salt, iterations);
  return {
    iterationCount: iterations,
    salt: salt.toString('base64'),
    storedKey: sha256(hmac(salted, 'Client Key')).toString('base64'),
    serverKey: hmac(salted, 'Server Key').toString('base64'),
  };
}

/** Whether `password` is the one these credentials were made from. */
export function passwordMatches(password: string, c: ScramCredentials): boolean {
  const fresh = scramCredentials(password, Buffer.from(c.salt, 'base64'), c.iterationCount);
  return fresh.storedKey === c.storedKey && fresh.serverKey === c.serverKey;
}

export function authenticationFailed(): MongoServerError {
  return new MongoServerError(18, 'Authentication failed.', { codeName: 'AuthenticationFailed' });
}

function malformed(detail: string): MongoServerError {
  return new MongoServerError(17, `Invalid SCRAM-SHA-256 message: ${detail}`, {
    codeName: 'ProtocolError',
  });
}

/** `a=x,b=y` attributes in order; values may contain '='. */
function attributes(message: string): [string, string][] {
  return message.split(',').map((part) => {
    const eq = part.indexOf('=');
    if (eq !== 1) throw malformed(`expected 'name=value', got '${part.slice(0, 20)}'`);
    return [part[0] as string, part.slice(2)];
  });
}

/** RFC 5802 saslname: ',' is sent as '=2C' and '=' as '=3D'; any other '=' is an error. */
function decodeSaslName(name: string): string {
  if (/=(?!2C|3D)/.test(name)) throw malformed('bad escape in the user name');
  return name.replace(/=2C/g, ',').replace(/=3D/g, '=');
}

/**
 * One authentication conversation. `first` takes the client-first-message and returns the
 * server-first-message; `final` checks the client's proof and returns the server signature.
 */
export class ScramServer {
  user = '';
  private state: 'new' | 'challenged' | 'verified' = 'new';
  private gs2Header = '';
  private nonce = '';
  private authPrefix = '';
  private credentials: ScramCredentials | undefined;

  constructor(
    private readonly lookup: (user: string) => ScramCredentials | undefined,
    private readonly serverNonce: () => string = () => randomBytes(24).toString('base64'),
  ) {}

  get verified(): boolean {
    return this.state === 'verified';
  }

  first(clientFirst: string): string {
    if (this.state !== 'new') throw malformed('the conversation has already started');
    // gs2-header: "n" (no channel binding) or "y" (client could, thinks we cannot), no authzid.
    const m = /^([ny]),(a=[^,]*)?,(.*)$/.exec(clientFirst);
    if (!m) {
      if (clientFirst.startsWith('p=')) throw malformed('channel binding is not supported');
      throw malformed('bad GS2 header');
    }
    if (m[2]) throw malformed('authorization identities are not supported');
    this.gs2Header = `${m[1]},,`;
    const bare = m[3] as string;
    const attrs = attributes(bare);
    if (attrs[0]?.[0] === 'm') throw malformed('mandatory extensions are not supported');
    if (attrs[0]?.[0] !== 'n' || attrs[1]?.[0] !== 'r') {
      throw malformed("expected 'n=<user>,r=<nonce>'");
    }
    this.user = decodeSaslName(attrs[0][1]);
    const clientNonce = attrs[1][1];
    if (this.user === '') throw malformed('empty user name');
    if (clientNonce === '') throw malformed('empty nonce');
    this.credentials = this.lookup(this.user);
    if (!this.credentials) throw authenticationFailed();
    this.nonce = clientNonce + this.serverNonce();
    const serverFirst = `r=${this.nonce},s=${this.credentials.salt},i=${this.credentials.iterationCount}`;
    this.authPrefix = `${bare},${serverFirst}`;
    this.state = 'challenged';
    return serverFirst;
  }

  final(clientFinal: string): string {
    const c = this.credentials;
    if (this.state !== 'challenged' || !c) throw malformed('no challenge to answer');
    const proofAt = clientFinal.lastIndexOf(',p=');
    if (proofAt < 0) throw malformed("missing 'p=<proof>'");
    const withoutProof = clientFinal.slice(0, proofAt);
    const attrs = attributes(withoutProof);
    if (attrs[0]?.[0] !== 'c' || attrs[1]?.[0] !== 'r') throw malformed("expected 'c=…,r=…'");
    if (attrs[0][1] !== Buffer.from(this.gs2Header).toString('base64')) {
      throw malformed('channel binding data does not match the GS2 header');
    }
    if (attrs[1][1] !== this.nonce) throw malformed('nonce mismatch');
    const proof = Buffer.from(clientFinal.slice(proofAt + 3), 'base64');
    const authMessage = `${this.authPrefix},${withoutProof}`;
    const storedKey = Buffer.from(c.storedKey, 'base64');
    const signature = hmac(storedKey, authMessage);
    if (proof.length !== signature.length) throw authenticationFailed();
    const clientKey = Buffer.alloc(proof.length);
    for (let i = 0; i < proof.length; i++) {
      clientKey[i] = (proof[i] as number) ^ (signature[i] as number);
    }
    if (!timingSafeEqual(sha256(clientKey), storedKey)) throw authenticationFailed();
    this.state = 'verified';
    const serverSignature = hmac(Buffer.from(c.serverKey, 'base64'), authMessage);
    return `v=${serverSignature.toString('base64')}`;
  }
}
