// MongoDB wire protocol: message framing, OP_MSG and legacy OP_QUERY parsing, and replies
// (OP_MSG, or OP_REPLY for OP_QUERY). See the "MongoDB Wire Protocol" manual page and the
// OP_MSG specification.
import { BSON } from 'bson';
import type { Doc } from '../bson/types.js';
import { DESERIALIZE_OPTIONS } from '../storage/persistence.js';

export const OP_REPLY = 1;
export const OP_QUERY = 2004;
export const OP_COMPRESSED = 2012;
export const OP_MSG = 2013;

export const MAX_MESSAGE_SIZE = 48_000_000;
export const MAX_BSON_SIZE = 16 * 1024 * 1024;

export const FLAG_CHECKSUM_PRESENT = 1;
export const FLAG_MORE_TO_COME = 2;
export const FLAG_EXHAUST_ALLOWED = 1 << 16;

export class ProtocolError extends Error {}

export interface Header {
  length: number;
  requestId: number;
  responseTo: number;
  opCode: number;
}

export interface Request {
  header: Header;
  /** The command document; document sequences are attached as array fields. */
  command: Doc;
  flags: number;
  legacy: boolean;
}

/** Splits a byte stream into whole messages. */
export class Framer {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: Buffer[] = [];
    for (;;) {
      if (this.buffered < 4) break;
      const head = this.peek(4);
      const len = head.readInt32LE(0);
      if (len < 16 || len > MAX_MESSAGE_SIZE)
        throw new ProtocolError(`invalid message length ${len}`);
      if (this.buffered < len) break;
      out.push(this.take(len));
    }
    return out;
  }

  private peek(n: number): Buffer {
    if ((this.chunks[0] as Buffer).length >= n) return this.chunks[0] as Buffer;
    const all = Buffer.concat(this.chunks);
    this.chunks = [all];
    return all;
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    const msg = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return msg;
  }
}

function readCString(buf: Buffer, off: number): [string, number] {
  const end = buf.indexOf(0, off);
  if (end < 0) throw new ProtocolError('unterminated cstring');
  return [buf.toString('utf8', off, end), end + 1];
}

function readDoc(buf: Buffer, off: number, limit: number): [Doc, number] {
  if (off + 5 > limit) throw new ProtocolError('truncated document');
  const size = buf.readInt32LE(off);
  if (size < 5 || off + size > limit) throw new ProtocolError('invalid document length');
  try {
    return [BSON.deserialize(buf.subarray(off, off + size), DESERIALIZE_OPTIONS), off + size];
  } catch (err) {
    throw new ProtocolError(`invalid BSON: ${(err as Error).message}`);
  }
}

export function parseMessage(msg: Buffer): Request {
  const header: Header = {
    length: msg.readInt32LE(0),
    requestId: msg.readInt32LE(4),
    responseTo: msg.readInt32LE(8),
    opCode: msg.readInt32LE(12),
  };
  if (header.opCode === OP_MSG) {
    const flags = msg.readUInt32LE(16);
    // Bits 0-15 are "required": unknown ones must make us fail the message.
    if ((flags & 0xffff & ~(FLAG_CHECKSUM_PRESENT | FLAG_MORE_TO_COME)) !== 0) {
      throw new ProtocolError(`unsupported OP_MSG flag bits ${flags.toString(16)}`);
    }
    const limit = flags & FLAG_CHECKSUM_PRESENT ? msg.length - 4 : msg.length;
    let off = 20;
    let body: Doc | undefined;
    const sequences: [string, Doc[]][] = [];
    while (off < limit) {
      const kind = msg[off];
      off += 1;
      if (kind === 0) {
        if (body) throw new ProtocolError('OP_MSG with more than one body section');
        [body, off] = readDoc(msg, off, limit);
      } else if (kind === 1) {
        const size = msg.readInt32LE(off);
        const end = off + size;
        if (size < 5 || end > limit) throw new ProtocolError('invalid document sequence size');
        let [id, p] = readCString(msg, off + 4);
        const docs: Doc[] = [];
        while (p < end) {
          let d: Doc;
          [d, p] = readDoc(msg, p, end);
          docs.push(d);
        }
        sequences.push([id, docs]);
        off = end;
        id = '';
      } else {
        throw new ProtocolError(`unknown OP_MSG section kind ${String(kind)}`);
      }
    }
    if (!body) throw new ProtocolError('OP_MSG without a body section');
    for (const [id, docs] of sequences) {
      if (id in body)
        throw new ProtocolError(`duplicate field '${id}' in body and document sequence`);
      body[id] = docs;
    }
    return { header, command: body, flags, legacy: false };
  }
  if (header.opCode === OP_QUERY) {
    const flags = msg.readInt32LE(16);
    const [ns, off] = readCString(msg, 20);
    const [query] = readDoc(msg, off + 8, msg.length);
    // The legacy handshake may wrap the command in $query.
    const command = (query.$query !== undefined ? query.$query : query) as Doc;
    return {
      header,
      command: { ...command, $db: ns.split('.')[0] ?? 'admin', $ns: ns },
      flags,
      legacy: true,
    };
  }
  throw new ProtocolError(`unsupported opCode ${header.opCode}`);
}

let nextResponseId = 1;

function header(length: number, responseTo: number, opCode: number): Buffer {
  const h = Buffer.allocUnsafe(16);
  h.writeInt32LE(length, 0);
  h.writeInt32LE(nextResponseId++ & 0x7fffffff, 4);
  h.writeInt32LE(responseTo, 8);
  h.writeInt32LE(opCode, 12);
  return h;
}

export function opMsgReply(body: Buffer, responseTo: number, flags = 0): Buffer[] {
  const h = header(16 + 4 + 1 + body.length, responseTo, OP_MSG);
  const f = Buffer.allocUnsafe(5);
  f.writeUInt32LE(flags >>> 0, 0);
  f[4] = 0;
  return [h, f, body];
}

export function opReply(body: Buffer, responseTo: number): Buffer[] {
  const h = header(16 + 20 + body.length, responseTo, OP_REPLY);
  const f = Buffer.alloc(20);
  f.writeInt32LE(8, 0); // AwaitCapable
  f.writeInt32LE(1, 16); // numberReturned
  return [h, f, body];
}
