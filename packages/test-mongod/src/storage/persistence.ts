// Append-only, crash-safe log. Each record is `u32 length | u32 crc32 | BSON payload`. Records
// are written with a synchronous write(2) before the client gets its reply, so a kill -9 right
// after an acknowledged write keeps it (the OS page cache holds it; fsync is not needed for
// that). A torn record at the tail (crash mid-write) is detected by length/CRC and cut off.
// Compaction writes a snapshot to a temporary file, fsyncs it and renames it over the log.
import fs from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { BSON } from 'bson';
import type { Doc } from '../bson/types.js';
import { serialize } from '../wire/raw.js';

export const DESERIALIZE_OPTIONS = { promoteValues: false, bsonRegExp: true } as const;

const LOG_FILE = 'changeq-mongod.log';
const LOCK_FILE = 'mongod.lock';

export function encodeRecord(payload: Doc): Buffer {
  // Not BSON.serialize: a record (an update with its pre- and post-image) may exceed bson's 17 MB
  // scratch buffer, past which it throws.
  const body = serialize(payload);
  const out = Buffer.allocUnsafe(8 + body.length);
  out.writeUInt32LE(body.length, 0);
  out.writeUInt32LE(crc32(body), 4);
  out.set(body, 8);
  return out;
}

function writeAll(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
}

/** A snapshot file being written: records go out in chunks of about 4 MB. */
export class SnapshotWriter {
  readonly started = performance.now();
  /** Records appended to the live log since the snapshot began; they follow it. */
  readonly tail: Buffer[] = [];
  size = 0;
  private chunk: Buffer[] = [];
  private chunkBytes = 0;

  constructor(
    readonly fd: number,
    readonly path: string,
  ) {}

  emit(record: Doc): void {
    this.write(encodeRecord(record));
  }

  write(encoded: Buffer): void {
    this.chunk.push(encoded);
    this.chunkBytes += encoded.length;
    this.size += encoded.length;
    if (this.chunkBytes > 4 << 20) this.flush();
  }

  flush(): void {
    if (this.chunk.length === 0) return;
    writeAll(this.fd, Buffer.concat(this.chunk));
    this.chunk = [];
    this.chunkBytes = 0;
  }
}

export class Persistence {
  private fd: number;
  private bytes: number;
  private lastSnapshotBytes = 0;
  private snapshot: SnapshotWriter | undefined;
  readonly logPath: string;

  private constructor(
    readonly dir: string,
    fd: number,
    bytes: number,
    private readonly log: (line: string) => void,
  ) {
    this.fd = fd;
    this.bytes = bytes;
    this.logPath = path.join(dir, LOG_FILE);
  }

  /** Take the directory lock, read every valid record, and open the log for appending. */
  static open(
    dir: string,
    log: (line: string) => void,
  ): { persistence: Persistence; records: Doc[] } {
    fs.mkdirSync(dir, { recursive: true });
    lockDir(dir);
    const file = path.join(dir, LOG_FILE);
    fs.rmSync(`${file}.tmp`, { force: true });
    const records: Doc[] = [];
    let good = 0;
    if (fs.existsSync(file)) {
      const data = fs.readFileSync(file);
      let off = 0;
      while (off + 8 <= data.length) {
        const len = data.readUInt32LE(off);
        const sum = data.readUInt32LE(off + 4);
        if (off + 8 + len > data.length) break;
        const body = data.subarray(off + 8, off + 8 + len);
        if (crc32(body) !== sum) break;
        try {
          records.push(BSON.deserialize(body, DESERIALIZE_OPTIONS));
        } catch {
          break;
        }
        off += 8 + len;
        good = off;
      }
      if (good < data.length) {
        log(`persistence: discarding ${data.length - good} bytes of incomplete log tail`);
        fs.truncateSync(file, good);
      }
    }
    const fd = fs.openSync(file, 'a');
    const p = new Persistence(dir, fd, good, log);
    p.lastSnapshotBytes = good;
    return { persistence: p, records };
  }

  append(records: Buffer[]): void {
    if (records.length === 0) return;
    const buf = records.length === 1 ? (records[0] as Buffer) : Buffer.concat(records);
    writeAll(this.fd, buf);
    this.bytes += buf.length;
    this.snapshot?.tail.push(buf);
  }

  shouldCompact(minBytes: number): boolean {
    return this.bytes > Math.max(minBytes, this.lastSnapshotBytes * 2);
  }

  /** The snapshot being written beside the live log, if any. */
  get snapshotting(): boolean {
    return this.snapshot !== undefined;
  }

  /**
   * Start writing a snapshot to a temporary file. Until commitSnapshot(), appends still go to
   * the live log (a crash meanwhile keeps it whole) and are also kept to follow the snapshot.
   */
  beginSnapshot(): SnapshotWriter {
    if (this.snapshot) throw new Error('a snapshot is already being written');
    const tmp = `${this.logPath}.tmp`;
    this.snapshot = new SnapshotWriter(fs.openSync(tmp, 'w'), tmp);
    return this.snapshot;
  }

  /** Finish the snapshot: add what was appended meanwhile, fsync, and rename it over the log. */
  commitSnapshot(): void {
    const w = this.snapshot;
    if (!w) return;
    this.snapshot = undefined;
    const snapshotBytes = w.size;
    for (const r of w.tail) w.write(r);
    w.flush();
    fs.fsyncSync(w.fd);
    fs.closeSync(w.fd);
    fs.renameSync(w.path, this.logPath);
    try {
      const dfd = fs.openSync(this.dir, 'r');
      fs.fsyncSync(dfd);
      fs.closeSync(dfd);
    } catch {
      // Directory fsync is not supported everywhere; the rename is still atomic.
    }
    fs.closeSync(this.fd);
    this.fd = fs.openSync(this.logPath, 'a');
    const ms = Math.round(performance.now() - w.started);
    this.log(
      `persistence: compacted log from ${this.bytes} to ${w.size} bytes in ${ms} ms ` +
        `(${w.tail.length} writes made meanwhile kept)`,
    );
    this.bytes = w.size;
    this.lastSnapshotBytes = snapshotBytes;
  }

  /** Drop a snapshot in progress; the live log is untouched. */
  abortSnapshot(): void {
    const w = this.snapshot;
    if (!w) return;
    this.snapshot = undefined;
    fs.closeSync(w.fd);
    fs.rmSync(w.path, { force: true });
  }

  /** Replace the log by a snapshot produced by `write` (called with a record sink), at once. */
  compact(write: (emit: (record: Doc) => void) => void): void {
    const w = this.beginSnapshot();
    try {
      write((record) => w.emit(record));
    } catch (err) {
      this.abortSnapshot();
      throw err;
    }
    this.commitSnapshot();
  }

  close(): void {
    this.abortSnapshot();
    try {
      fs.fsyncSync(this.fd);
    } catch {
      // best effort
    }
    fs.closeSync(this.fd);
    unlockDir(this.dir);
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Folders locked by servers of this process (the pid in the lock file cannot tell them apart). */
const lockedHere = new Set<string>();

function lockDir(dir: string): void {
  const real = fs.realpathSync(dir);
  if (lockedHere.has(real))
    throw new Error(`data directory ${dir} is already in use by another server in this process`);
  const lock = path.join(dir, LOCK_FILE);
  if (fs.existsSync(lock)) {
    const pid = Number(fs.readFileSync(lock, 'utf8').trim());
    if (pid && pid !== process.pid && pidAlive(pid)) {
      throw new Error(`data directory ${dir} is in use by process ${pid} (${lock})`);
    }
  }
  fs.writeFileSync(lock, `${process.pid}\n`);
  lockedHere.add(real);
}

function unlockDir(dir: string): void {
  lockedHere.delete(fs.realpathSync(dir));
  const lock = path.join(dir, LOCK_FILE);
  try {
    if (Number(fs.readFileSync(lock, 'utf8').trim()) === process.pid) fs.rmSync(lock);
  } catch {
    // already gone
  }
}
