/**
 * Free lists of same-size buffers, shared by the whole process: the chunks
 * of the transports' write queues and the buffers stream readers receive
 * into. A connection takes one when it has bytes to hold and gives it back
 * once they are gone, so a waiting connection holds none, while busy
 * connections keep reusing the same few. Dropping a buffer per read instead
 * makes V8 run a full collection for every few dozen megabytes received.
 *
 * @module
 */

/** A free list of same-size buffers. */
export class BufferPool {
  /** The size of every buffer the pool hands out. */
  readonly size: number;
  readonly #free: Uint8Array[] = [];
  readonly #max: number;

  /** A pool of `size`-byte buffers that keeps at most `maxFree` unused ones. */
  constructor(size: number, maxFree: number) {
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
