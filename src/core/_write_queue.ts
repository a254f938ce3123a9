/**
 * The bytes a transport could not send at once, kept in order until the
 * socket takes them. Every byte is copied in: what a caller handed to
 * `write()` is theirs again as soon as the call returns (the next read may
 * overwrite it, they may reuse it), and what goes out is what it held at
 * the call. This is asyncio's rule, and what makes forwarding from one
 * connection's read buffer into another connection safe.
 *
 * Small writes are packed into chunks of {@linkcode WRITE_CHUNK_SIZE} bytes,
 * and writes up to {@linkcode LARGE_WRITE_CHUNK_SIZE} (one read of the deno
 * backend) get a chunk of that size, both taken from pools shared by the
 * process: a busy connection allocates no buffer per write (at 100 KB per
 * request, a fresh buffer each time keeps V8's collector busy), and an
 * empty queue holds none.
 *
 * A driver sends from {@linkcode WriteQueue.peek} and reports with
 * {@linkcode WriteQueue.consume}. A view that `peek` returned stays intact
 * until `consume`: later writes only fill the room after it, so a send still
 * in flight (a Deno `conn.write`) never sees its bytes change.
 *
 * @module
 */

import { BufferPool } from "./_buffer_pool.ts";

/** The size of a small pooled chunk: writes up to this size are packed together. */
export const WRITE_CHUNK_SIZE = 16 * 1024;
/** The size of a large pooled chunk; a larger write gets a buffer of its own size. */
export const LARGE_WRITE_CHUNK_SIZE = 64 * 1024;

// Free chunks the process keeps (1 + 2 MiB); more are left to the collector.
const small: BufferPool = new BufferPool(WRITE_CHUNK_SIZE, 64);
const large: BufferPool = new BufferPool(LARGE_WRITE_CHUNK_SIZE, 32);

const NONE: never[] = [];
const SENT = new Uint8Array(0);
/** Sent chunks at the front of the arrays past which they are cut off (see `consume`). */
const COMPACT_AFTER = 32;

/** See the module documentation. */
export class WriteQueue {
  /** Bytes queued and not yet consumed. */
  size = 0;
  /**
   * Owned buffers, oldest first; `#ends[i]` is how full `#chunks[i]` is.
   * Made on the first write that waits: most connections never need them.
   */
  #chunks: Uint8Array[] = NONE;
  #ends: number[] = NONE;
  /** The first chunk with unsent bytes, and where they start in it. */
  #head = 0;
  #start = 0;

  /** Copies `data` from offset `from` to the end of the queue. */
  append(data: Uint8Array, from = 0): void {
    let length = data.length - from;
    if (length <= 0) return;
    this.size += length;
    const last = this.#chunks.length - 1;
    if (last >= this.#head) {
      // Fill the room left in the newest chunk; a view peek() lent ends before it.
      const tail = this.#chunks[last];
      const end = this.#ends[last];
      const n = Math.min(tail.length - end, length);
      if (n > 0) {
        tail.set(data.subarray(from, from + n), end);
        this.#ends[last] = end + n;
        from += n;
        length -= n;
        if (length === 0) return;
      }
    }
    const chunk = length <= WRITE_CHUNK_SIZE
      ? small.take()
      : length <= LARGE_WRITE_CHUNK_SIZE
      ? large.take()
      : new Uint8Array(length);
    chunk.set(from === 0 ? data : data.subarray(from));
    if (this.#chunks === NONE) {
      this.#chunks = [];
      this.#ends = [];
    }
    this.#chunks.push(chunk);
    this.#ends.push(length);
  }

  /** Chunks the arrays hold, sent ones not yet cut off included (for tests). */
  get chunkCount(): number {
    return this.#chunks.length;
  }

  /**
   * The oldest unsent bytes (all of one chunk), or `null` when the queue is
   * empty. The view stays valid until {@linkcode WriteQueue.consume}.
   */
  peek(): Uint8Array | null {
    if (this.size === 0) return null;
    return this.#chunks[this.#head].subarray(this.#start, this.#ends[this.#head]);
  }

  /**
   * `n` bytes from the front were sent: forgets them, and gives emptied
   * chunks back. A queue that never empties (a peer that reads just enough)
   * keeps no reference to what it sent: sent chunks are dropped from the
   * arrays, which are cut down once enough of them are at the front.
   */
  consume(n: number): void {
    this.size -= n;
    const chunks = this.#chunks;
    let start = this.#start + n;
    while (this.#head < chunks.length && start >= this.#ends[this.#head]) {
      start -= this.#ends[this.#head];
      const chunk = chunks[this.#head];
      if (chunk.length === WRITE_CHUNK_SIZE) small.give(chunk);
      else large.give(chunk);
      chunks[this.#head] = SENT;
      this.#head++;
    }
    this.#start = start;
    if (this.#head === chunks.length) {
      this.#reset();
    } else if (this.#head >= COMPACT_AFTER && 2 * this.#head >= chunks.length) {
      chunks.splice(0, this.#head);
      this.#ends.splice(0, this.#head);
      this.#head = 0;
    }
  }

  /**
   * Drops everything queued. The chunks go to the collector, not the pool:
   * a send still in flight may read them.
   */
  clear(): void {
    this.size = 0;
    this.#reset();
  }

  #reset(): void {
    this.#chunks.length = 0;
    this.#ends.length = 0;
    this.#head = 0;
    this.#start = 0;
  }
}
