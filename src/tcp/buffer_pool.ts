/**
 * The buffers stream readers receive into, shared by the whole process.
 *
 * A reader takes one when data arrives and gives it back once it has handed
 * all of it out, so a connection that is waiting holds no buffer, while busy
 * connections keep reusing the same few. Dropping a buffer per read instead
 * makes V8 run a full collection for every few dozen megabytes received.
 *
 * @module
 */

/** The size of a pooled buffer: one read of the epoll backend fits. */
export const POOLED_BUFFER_SIZE = 256 * 1024;

/** How many free buffers the pool keeps (8 MiB); more are left to the collector. */
export const MAX_FREE_BUFFERS = 32;

/** A free list of same-size buffers. */
export class BufferPool {
  /** The size of every buffer the pool hands out. */
  readonly size: number;
  readonly #free: Uint8Array[] = [];
  readonly #max: number;

  /** A pool of `size`-byte buffers that keeps at most `maxFree` unused ones. */
  constructor(size: number = POOLED_BUFFER_SIZE, maxFree: number = MAX_FREE_BUFFERS) {
    this.size = size;
    this.#max = maxFree;
  }

  /** Free buffers ready to be taken. */
  get free(): number {
    return this.#free.length;
  }

  /** A buffer of {@linkcode BufferPool.size} bytes: a free one, or a new one. Its contents are undefined. */
  take(): Uint8Array {
    return this.#free.pop() ?? new Uint8Array(this.size);
  }

  /**
   * Hands `buffer` back for reuse. Nothing may refer to it any more. A
   * buffer of another size, or one past the pool's limit, is just dropped.
   */
  give(buffer: Uint8Array): void {
    if (buffer.length === this.size && this.#free.length < this.#max) this.#free.push(buffer);
  }
}

/** The pool of the process's stream readers. */
export const readerBuffers: BufferPool = new BufferPool();
