/**
 * The reading half of the stream-style API, after asyncio's `StreamReader`.
 *
 * @module
 */

import type { Transport } from "./protocol.ts";
import { checkInteger } from "../_validate.ts";
import { indexOfBytes } from "../_bytes.ts";

/**
 * The default buffer limit of a {@linkcode StreamReader}: 64 KiB, as in
 * asyncio. A line or `readUntil` separator must come within it.
 *
 * @example Accept lines up to 1 MiB
 * ```ts
 * import { DEFAULT_STREAM_LIMIT, StreamReader } from "@x/echo";
 *
 * const reader = new StreamReader({ limit: 16 * DEFAULT_STREAM_LIMIT });
 * reader.feedData(new TextEncoder().encode("x".repeat(100_000) + "\n"));
 * console.log((await reader.readLine())?.length); // 100001
 * ```
 */
export const DEFAULT_STREAM_LIMIT = 64 * 1024;

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);
/** The most buffer an emptied reader keeps for the next data. */
const KEPT_BUFFER_SIZE = 16 * 1024;
const NEWLINE = new Uint8Array([0x0a]);

/**
 * Thrown when end of input comes before a read could complete; `partial`
 * holds the bytes that did arrive.
 *
 * @example
 * ```ts
 * import { IncompleteReadError, StreamReader } from "@x/echo";
 *
 * const reader = new StreamReader();
 * reader.feedData(new Uint8Array([1, 2]));
 * reader.feedEof();
 * try {
 *   await reader.readExactly(4);
 * } catch (error) {
 *   if (error instanceof IncompleteReadError) console.log(error.partial.length); // 2
 * }
 * ```
 */
export class IncompleteReadError extends Error {
  /** The bytes read before end of input. */
  readonly partial: Uint8Array;
  /** How many bytes were asked for; `null` when reading up to a separator. */
  readonly expected: number | null;

  /**
   * Makes the error for a read of `expected` bytes (or up to a separator, when
   * `null`) that got only `partial`.
   *
   * @example
   * ```ts
   * import { IncompleteReadError } from "@x/echo";
   *
   * const error = new IncompleteReadError(new Uint8Array(3), 10);
   * console.log(error.message);
   * ```
   */
  constructor(partial: Uint8Array, expected: number | null) {
    super(
      expected === null
        ? `End of input after ${partial.length} bytes, before the separator was found.`
        : `End of input after ${partial.length} of ${expected} expected bytes.`,
    );
    this.name = "IncompleteReadError";
    this.partial = partial;
    this.expected = expected;
  }
}

/**
 * Thrown when a line or a separator-terminated chunk would be longer than the
 * reader's limit. `consumed` says how many bytes were looked at.
 *
 * @example
 * ```ts
 * import { LimitOverrunError, StreamReader } from "@x/echo";
 *
 * const reader = new StreamReader({ limit: 4 });
 * reader.feedData(new TextEncoder().encode("far too long\n"));
 * try {
 *   await reader.readLine();
 * } catch (error) {
 *   if (error instanceof LimitOverrunError) console.log(error.message);
 * }
 * ```
 */
export class LimitOverrunError extends Error {
  /** Bytes looked at before giving up. */
  readonly consumed: number;

  /**
   * Makes the error; `limit` is the reader's limit.
   *
   * @example
   * ```ts
   * import { LimitOverrunError } from "@x/echo";
   *
   * console.log(new LimitOverrunError(70000, 65536).message);
   * ```
   */
  constructor(consumed: number, limit: number) {
    super(
      `Separator not found within the reader's limit of ${limit} bytes (${consumed} bytes looked at). ` +
        `Raise the limit option or read in fixed-size pieces with read(n).`,
    );
    this.name = "LimitOverrunError";
    this.consumed = consumed;
  }
}

/** A `read` waiting for data: answered with at most `max` bytes, or `null` at end of input. */
interface PendingRead {
  max: number;
  resolve(chunk: Uint8Array | null): void;
  reject(error: Error): void;
}

/**
 * Options of a {@linkcode StreamReader}.
 *
 * @example
 * ```ts
 * import type { StreamReaderOptions } from "@x/echo";
 *
 * const options: StreamReaderOptions = { limit: 1024 * 1024 };
 * ```
 */
export interface StreamReaderOptions {
  /**
   * The longest line or separator-terminated chunk accepted, in bytes; the
   * transport is paused while more than twice this is buffered. Default 65536.
   */
  limit?: number;
}

/** Checks `options.limit` and returns it, or the default when it is not given. */
export function resolveLimit(options: StreamReaderOptions): number {
  const { limit = DEFAULT_STREAM_LIMIT } = options;
  checkInteger("limit", limit, 1, 2 ** 30);
  return limit;
}

/**
 * Buffers what a connection receives and hands it out by size, by line or up
 * to a separator. At most about twice `limit` bytes are buffered: past that,
 * reading from the socket is paused until the application catches up.
 *
 * Only one read may wait at a time. Iterating yields chunks as they arrive.
 *
 * @example Read lines until end of input
 * ```ts
 * import { StreamReader } from "@x/echo";
 *
 * const reader = new StreamReader();
 * reader.feedData(new TextEncoder().encode("one\ntwo\n"));
 * reader.feedEof();
 * for (let line; (line = await reader.readLine()) !== null;) {
 *   console.log(new TextDecoder().decode(line));
 * }
 * ```
 */
export class StreamReader implements AsyncIterable<Uint8Array> {
  readonly #limit: number;
  #buffer: Uint8Array = EMPTY;
  #start = 0;
  #end = 0;
  #eof = false;
  #error: Error | null = null;
  #waiter: (() => void) | null = null;
  /** A `read` waiting on an empty buffer: `feedData` answers it directly. */
  #pending: PendingRead | null = null;
  #transport: Transport | null = null;
  #paused = false;
  #readable: ReadableStream<Uint8Array> | null = null;

  /**
   * Makes an empty reader; {@linkcode StreamReader.feedData} fills it.
   *
   * @example
   * ```ts
   * import { StreamReader } from "@x/echo";
   *
   * const reader = new StreamReader({ limit: 1024 });
   * ```
   */
  constructor(options: StreamReaderOptions = {}) {
    this.#limit = resolveLimit(options);
  }

  /** The reader's limit in bytes. */
  get limit(): number {
    return this.#limit;
  }

  /** Bytes buffered and not yet read. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /**
   * Attaches the transport whose reading is paused when too much is buffered.
   * Servers and clients do this; call it only when building a reader by hand.
   */
  setTransport(transport: Transport): void {
    this.#transport = transport;
  }

  /** Adds received bytes (copied). Used by the connection; callable by hand for tests. */
  feedData(data: Uint8Array): void {
    const length = data.length;
    if (length === 0) return;
    if (this.#eof) throw new Error("feedData() after feedEof(): no data may follow end of input.");
    const pending = this.#pending;
    if (pending !== null && length <= pending.max) {
      // A read is waiting on an empty buffer: its answer is this data, copied once.
      this.#pending = null;
      pending.resolve(data.slice());
      return;
    }
    if (this.#end + length > this.#buffer.length) this.#makeRoom(length);
    this.#buffer.set(data, this.#end);
    this.#end += length;
    if (!this.#paused && this.#transport && this.#end - this.#start > 2 * this.#limit) {
      this.#paused = true;
      this.#transport.pauseReading();
    }
    if (pending !== null) {
      this.#pending = null;
      pending.resolve(this.#take(pending.max));
    }
    this.#wake();
  }

  /** Marks end of input: reads return what is left, then `null`. */
  feedEof(): void {
    this.#eof = true;
    const pending = this.#pending;
    this.#pending = null;
    pending?.resolve(null);
    this.#wake();
  }

  /** Fails the reader: reads after the buffered bytes are gone reject with `error`. */
  setException(error: Error): void {
    this.#error = error;
    const pending = this.#pending;
    this.#pending = null;
    pending?.reject(error);
    this.#wake();
  }

  /** `true` once end of input was received and everything buffered was read. */
  atEof(): boolean {
    return this.#eof && this.#end === this.#start;
  }

  /**
   * Reads up to `n` bytes: whatever is buffered, waiting only while nothing
   * is. With `n` of -1, reads until end of input. Resolves to `null` at end of
   * input.
   *
   * @example
   * ```ts
   * import { StreamReader } from "@x/echo";
   *
   * const reader = new StreamReader();
   * reader.feedData(new Uint8Array([1, 2, 3]));
   * console.log(await reader.read(2)); // Uint8Array [1, 2]
   * ```
   */
  read(n: number = this.#limit): Promise<Uint8Array | null> {
    if (n !== -1) {
      try {
        checkInteger("read size", n, 0, 2 ** 53 - 1);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    if (n === 0) return Promise.resolve(new Uint8Array(0));
    if (n === -1) return this.#readToEnd();
    return this.#readUpTo(n);
  }

  /**
   * Up to `max` bytes: at once when any are buffered, else the next data
   * fed (handed over without buffering when it fits). No `async`: one
   * promise per read, the hot path of the stream API.
   */
  #readUpTo(max: number): Promise<Uint8Array | null> {
    const buffered = this.#end - this.#start;
    if (buffered > 0) return Promise.resolve(this.#take(Math.min(max, buffered)));
    if (this.#eof) return Promise.resolve(null);
    if (this.#error) return Promise.reject(this.#error);
    if (this.#waiter || this.#pending) return Promise.reject(this.#concurrentReadError("read"));
    const { promise, resolve, reject } = Promise.withResolvers<Uint8Array | null>();
    this.#pending = { max, resolve, reject };
    return promise;
  }

  async #readToEnd(): Promise<Uint8Array | null> {
    while (!this.#eof) await this.#waitForData("read");
    return this.atEof() ? null : this.#take(this.#end - this.#start);
  }

  /**
   * Reads exactly `n` bytes.
   *
   * @throws {IncompleteReadError} when input ends first; its `partial` has what came.
   */
  async readExactly(n: number): Promise<Uint8Array> {
    checkInteger("read size", n, 0, 2 ** 53 - 1);
    while (this.#end - this.#start < n) {
      if (this.#eof) throw new IncompleteReadError(this.#take(this.#end - this.#start), n);
      await this.#waitForData("readExactly");
    }
    return this.#take(n);
  }

  /**
   * Reads one line, with its `\n`. At end of input returns the last,
   * unterminated line, then `null`.
   *
   * @throws {LimitOverrunError} when the line is longer than `limit`; the line is discarded.
   */
  async readLine(): Promise<Uint8Array | null> {
    try {
      return await this.readUntil(NEWLINE);
    } catch (error) {
      if (error instanceof IncompleteReadError) {
        return error.partial.length === 0 ? null : error.partial;
      }
      if (error instanceof LimitOverrunError) {
        // Drop the overlong line (up to its newline, if it arrived) so the next read starts clean.
        const at = this.#find(NEWLINE, this.#start);
        this.#consume(at === -1 ? this.#end - this.#start : at - this.#start + 1);
      }
      throw error;
    }
  }

  /**
   * Reads up to and including `separator` (bytes, or a string sent as UTF-8).
   *
   * @throws {IncompleteReadError} when input ends before the separator; `partial` has all that came.
   * @throws {LimitOverrunError} when the separator is not within `limit` bytes; the data stays buffered.
   */
  async readUntil(separator: Uint8Array | string): Promise<Uint8Array> {
    const sep = typeof separator === "string" ? encoder.encode(separator) : separator;
    if (sep.length === 0) {
      throw new RangeError("Invalid separator: it is empty. Use at least one byte.");
    }
    // Where to resume the search, counted from the first unread byte: feeding
    // data may move the unread bytes to the front of the buffer.
    let skip = 0;
    for (;;) {
      const at = this.#find(sep, this.#start + skip);
      if (at !== -1) {
        if (at - this.#start > this.#limit) {
          throw new LimitOverrunError(at - this.#start, this.#limit);
        }
        return this.#take(at - this.#start + sep.length);
      }
      const buffered = this.#end - this.#start;
      if (buffered > this.#limit) throw new LimitOverrunError(buffered, this.#limit);
      if (this.#eof) throw new IncompleteReadError(this.#take(buffered), null);
      // Look again only at bytes that could now complete the separator.
      skip = Math.max(0, buffered - sep.length + 1);
      await this.#waitForData("readUntil");
    }
  }

  /**
   * Yields what has arrived, chunk by chunk, until end of input. A chunk is
   * everything buffered when it is taken: at most about twice `limit` plus
   * one read, as reading pauses past twice `limit`.
   */
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    const next = (chunk: Uint8Array | null): IteratorResult<Uint8Array> =>
      chunk === null ? { done: true, value: undefined } : { done: false, value: chunk };
    return { next: () => this.#readUpTo(Number.MAX_SAFE_INTEGER).then(next) };
  }

  /**
   * The same bytes as a web `ReadableStream`, for `pipeTo` and friends. Made on
   * first use; do not mix it with direct reads.
   */
  get readable(): ReadableStream<Uint8Array> {
    return this.#readable ??= new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        const chunk = await this.read();
        if (chunk === null) controller.close();
        else controller.enqueue(chunk);
      },
      cancel: () => {
        this.#transport?.close();
      },
    });
  }

  #take(n: number): Uint8Array {
    const chunk = this.#buffer.slice(this.#start, this.#start + n);
    this.#consume(n);
    return chunk;
  }

  #consume(n: number): void {
    this.#start += n;
    if (this.#start === this.#end) {
      this.#start = this.#end = 0;
      // An idle connection keeps no large buffer from an earlier burst.
      if (this.#buffer.length > KEPT_BUFFER_SIZE) this.#buffer = EMPTY;
    }
    if (this.#paused && this.#end - this.#start <= this.#limit) {
      this.#paused = false;
      this.#transport?.resumeReading();
    }
  }

  #find(sep: Uint8Array, from: number): number {
    return indexOfBytes(this.#buffer, sep, from, this.#end);
  }

  #makeRoom(length: number): void {
    const buffered = this.#end - this.#start;
    const needed = buffered + length;
    if (needed <= this.#buffer.length) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
    } else {
      const grown = new Uint8Array(Math.max(needed, 2 * this.#buffer.length, 4096));
      grown.set(this.#buffer.subarray(this.#start, this.#end));
      this.#buffer = grown;
    }
    this.#start = 0;
    this.#end = buffered;
  }

  #concurrentReadError(caller: string): Error {
    return new Error(
      `${caller}() called while another read is waiting on this reader. Await each read before the next.`,
    );
  }

  async #waitForData(caller: string): Promise<void> {
    if (this.#error) throw this.#error;
    if (this.#waiter || this.#pending) throw this.#concurrentReadError(caller);
    if (this.#paused) {
      this.#paused = false;
      this.#transport?.resumeReading();
    }
    await new Promise<void>((resolve) => (this.#waiter = resolve));
    if (this.#error && this.#end === this.#start) throw this.#error;
  }

  #wake(): void {
    const waiter = this.#waiter;
    if (waiter) {
      this.#waiter = null;
      waiter();
    }
  }
}
