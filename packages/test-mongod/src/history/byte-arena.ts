// Storage for the cached BSON of change events (HistoryEntry.bytes). Small Buffers come from
// Node's shared 8 KB pool, and one retained slice keeps its whole slab alive: cached events
// interleaved with transient buffers (log records, replies) held about four times their size.
// Copying them into chunks of their own keeps the history's memory what its events weigh; as
// entries leave the window in the order they came, whole chunks are freed behind them.

const CHUNK_BYTES = 256 * 1024;

export class ByteArena {
  private chunk = Buffer.allocUnsafeSlow(CHUNK_BYTES);
  private used = 0;

  /** A copy of `bytes` that shares memory only with other copies made by this arena. */
  copy(bytes: Uint8Array): Buffer {
    const n = bytes.length;
    if (n > CHUNK_BYTES / 8) {
      const own = Buffer.allocUnsafeSlow(n);
      own.set(bytes);
      return own;
    }
    if (this.used + n > CHUNK_BYTES) {
      this.chunk = Buffer.allocUnsafeSlow(CHUNK_BYTES);
      this.used = 0;
    }
    this.chunk.set(bytes, this.used);
    const view = this.chunk.subarray(this.used, this.used + n);
    this.used += n;
    return view;
  }
}
