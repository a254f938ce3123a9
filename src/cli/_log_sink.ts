/**
 * Where the server program's log lines go: stderr, without ever making the
 * server wait. A `writeSync` to a pipe nobody reads blocks once the pipe is
 * full (64 KiB on Linux), and with it every connection the event loop
 * serves. Here lines are queued in memory, up to a bound, and written by one
 * asynchronous write at a time, which Deno runs off the event loop. Past
 * the bound, lines are dropped and counted; once the queue has drained, one
 * line says how many were dropped.
 *
 * @module
 */

/** The most bytes of log lines kept waiting for stderr: 1 MiB. */
export const LOG_QUEUE_LIMIT = 1 << 20;
/**
 * The most bytes one write takes from the queue: whole lines up to PIPE_BUF
 * (4 KiB on Linux), which a pipe never splits, so the lines of workers
 * writing to the same stderr are never cut into each other (a longer line
 * goes alone).
 */
const WRITE_SIZE = 4096;

/** Something lines can be written to, asynchronously (stderr). */
export interface LogOutput {
  /** Writes some of `bytes`; resolves with how many. */
  write(bytes: Uint8Array): Promise<number>;
}

/** A queue of encoded log lines in front of an asynchronous output; see the module doc. */
export class NonBlockingSink {
  readonly #output: LogOutput;
  readonly #limit: number;
  readonly #encoder = new TextEncoder();
  readonly #dropNotice: (dropped: number) => string;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #writing: Promise<void> | null = null;
  /** Lines dropped since the last notice. */
  #dropped = 0;
  /** Lines dropped in all. */
  #droppedTotal = 0;

  /**
   * Writes to `output`, keeping at most `limit` bytes waiting;
   * `dropNotice(n)` is the line that reports `n` dropped lines.
   */
  constructor(output: LogOutput, limit: number, dropNotice: (dropped: number) => string) {
    this.#output = output;
    this.#limit = limit;
    this.#dropNotice = dropNotice;
  }

  /** Lines dropped so far, because the output did not keep up. */
  get dropped(): number {
    return this.#droppedTotal;
  }

  /** Bytes waiting to be written. */
  get queued(): number {
    return this.#queued;
  }

  /** Queues `line`, or drops it when the queue is full; never waits. */
  write(line: string): void {
    const bytes = this.#encoder.encode(line);
    if (this.#queued + bytes.length > this.#limit) {
      this.#dropped++;
      this.#droppedTotal++;
      return;
    }
    this.#queue.push(bytes);
    this.#queued += bytes.length;
    this.#writing ??= this.#drain();
  }

  /**
   * Resolves once everything queued is written, or after `ms` milliseconds,
   * whichever comes first (for the end of the program: the last lines are
   * written unless stderr is stuck).
   */
  async flush(ms: number): Promise<void> {
    if (this.#writing === null) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => timer = setTimeout(resolve, ms));
    await Promise.race([this.#writing, late]);
    clearTimeout(timer);
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const chunk = this.#take();
        for (let offset = 0; offset < chunk.length;) {
          offset += await this.#output.write(chunk.subarray(offset));
        }
        this.#queued -= chunk.length;
        if (this.#queue.length === 0 && this.#dropped > 0) {
          const notice = this.#encoder.encode(this.#dropNotice(this.#dropped));
          this.#dropped = 0;
          this.#queue.push(notice);
          this.#queued += notice.length;
        }
      }
    } catch {
      // stderr is gone (closed by the reader): nothing more can be said there.
      this.#queue = [];
      this.#queued = 0;
    } finally {
      this.#writing = null;
    }
  }

  /** The next chunk to write: queued lines joined, up to WRITE_SIZE (or one longer line). */
  #take(): Uint8Array {
    const queue = this.#queue;
    let count = 0;
    let size = 0;
    while (count < queue.length && (count === 0 || size + queue[count].length <= WRITE_SIZE)) {
      size += queue[count++].length;
    }
    const lines = queue.splice(0, count);
    if (lines.length === 1) return lines[0];
    const chunk = new Uint8Array(size);
    let offset = 0;
    for (const line of lines) {
      chunk.set(line, offset);
      offset += line.length;
    }
    return chunk;
  }
}
