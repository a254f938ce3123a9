/**
 * The reading half of the stream-style API, after asyncio's `StreamReader`.
 *
 * @module
 */

import type { Transport } from "../core/protocol.ts";
import { chargeBuffered } from "../core/_transport.ts";
import { BufferPool } from "../core/_buffer_pool.ts";
import { checkInteger } from "../_validate.ts";
import { indexOfBytes } from "../_bytes.ts";

/** The size of a pooled reader buffer: one read of the epoll backend fits. */
export const POOLED_BUFFER_SIZE = 256 * 1024;

/**
 * The buffers stream readers receive into, shared by the process: a reader
 * takes one when data arrives and gives it back once it has handed all of
 * it out, so a waiting connection holds none. At most 32 free ones are kept
 * (8 MiB).
 */
export const readerBuffers: BufferPool = new BufferPool(POOLED_BUFFER_SIZE, 32);

/**
 * The default buffer limit of a {@linkcode StreamReader}: 64 KiB, as in
 * asyncio. A line or `readUntil` separator must come within it.
 *
 * @example Accept lines up to 1 MiB
 * ```ts
 * import { DEFAULT_STREAM_LIMIT, StreamReader } from "@x/echo/streams";
 *
 * const reader = new StreamReader({ limit: 16 * DEFAULT_STREAM_LIMIT });
 * reader.feedData(new TextEncoder().encode("x".repeat(100_000) + "\n"));
 * console.log((await reader.readLine())?.length); // 100001
 * ```
 */
export const DEFAULT_STREAM_LIMIT = 64 * 1024;

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);
const ignore = () => {};
/**
 * Room asked for below this gets a small pooled buffer (16 KiB); from it
 * up, a large one. A transport receiving into the reader asks for a whole
 * read's worth; feeding small chunks (the deno backend reads small
 * messages in small reads) takes a small buffer.
 */
const SMALL_BUFFER = 16 * 1024;
/** The small buffers of the process's readers: at most 64 free ones are kept (1 MiB). */
const smallBuffers = new BufferPool(SMALL_BUFFER, 64);

/** Gives a buffer the reader no longer needs back to its pool (an own, odd-sized one is dropped). */
function release(buffer: Uint8Array): void {
  if (buffer.length === SMALL_BUFFER) smallBuffers.give(buffer);
  else readerBuffers.give(buffer);
}
/** The least free space {@linkcode StreamReader.getBuffer} offers, unless asked for less. */
const MIN_RECEIVE_ROOM = 64 * 1024;
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
        ? `Cannot read up to the separator: end of input came after ${partial.length} bytes, ` +
          `before the separator was found`
        : `Cannot read ${expected} bytes: end of input came after ${partial.length} of them`,
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
      `Cannot find the separator within the reader's limit of ${limit} bytes: ` +
        `${consumed} bytes were looked at; raise the limit option or read in fixed-size ` +
        `pieces with read(n)`,
    );
    this.name = "LimitOverrunError";
    this.consumed = consumed;
  }
}

/**
 * Options of a {@linkcode StreamReader}.
 *
 * @example
 * ```ts
 * import type { StreamReaderOptions } from "@x/echo/streams";
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
 * Received bytes wait in a buffer taken from a pool shared by the process
 * and given back as soon as everything in it was read, so a connection that
 * is waiting for data holds no buffer.
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
  /** Unread bytes are `#buffer[#start..#end]`. */
  #buffer: Uint8Array = EMPTY;
  #start = 0;
  #end = 0;
  /** The buffer the view {@linkcode StreamReader.readBorrowed} handed out is in, until the next read. */
  #lent: Uint8Array | null = null;
  /** Bytes of buffers counted against the connection's budget (see `#recharge`). */
  #charged = 0;
  #eof = false;
  #error: Error | null = null;
  #waiter: (() => void) | null = null;
  /** A `read` waiting on an empty buffer: `feedData` answers it directly. */
  #pending: ((chunk: Uint8Array | null) => void) | null = null;
  /** How the pending read fails. */
  #pendingReject: (error: Error) => void = ignore;
  /** The most bytes the pending read takes. */
  #pendingMax = 0;
  /** Whether the pending read is a {@linkcode StreamReader.readBorrowed}, answered with a view. */
  #pendingBorrowed = false;
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
    if (this.#eof) throw this.#afterEofError("feedData");
    const pending = this.#pending;
    if (pending !== null && !this.#pendingBorrowed && length <= this.#pendingMax) {
      // A read is waiting on an empty buffer: its answer is this data, copied once.
      this.#pending = null;
      pending(data.slice());
      return;
    }
    if (this.#end + length > this.#buffer.length) this.#makeRoom(length);
    this.#buffer.set(data, this.#end);
    this.#added(length);
  }

  /**
   * The free space after the buffered bytes, for a transport to receive
   * into without a copy (a `BufferedProtocol` hands it on); then
   * {@linkcode StreamReader.bufferUpdated} says how much was written. It is
   * at least `sizeHint` or 64 KiB long, whichever is less.
   *
   * @example Receive into the reader, as a transport does
   * ```ts
   * import { StreamReader } from "@x/echo";
   *
   * const reader = new StreamReader();
   * const space = reader.getBuffer(1024);
   * space.set([104, 105]); // what a recv() would write
   * reader.bufferUpdated(2);
   * console.log(new TextDecoder().decode((await reader.read())!)); // "hi"
   * ```
   *
   * @throws {Error} after {@linkcode StreamReader.feedEof}.
   */
  getBuffer(sizeHint: number): Uint8Array {
    if (this.#eof) throw this.#afterEofError("getBuffer");
    // asyncio passes -1 for "any size".
    const wanted = sizeHint >= 1 ? Math.min(sizeHint, MIN_RECEIVE_ROOM) : MIN_RECEIVE_ROOM;
    if (this.#buffer.length - this.#end < wanted) this.#makeRoom(wanted);
    return this.#end === 0 ? this.#buffer : this.#buffer.subarray(this.#end);
  }

  /**
   * Takes in the `nbytes` a transport wrote at the start of the space
   * {@linkcode StreamReader.getBuffer} returned.
   *
   * @throws {RangeError} when `nbytes` is not a whole number that fits in that space.
   */
  bufferUpdated(nbytes: number): void {
    if (!Number.isInteger(nbytes) || nbytes < 0 || this.#end + nbytes > this.#buffer.length) {
      throw new RangeError(
        `Cannot use byte count ${nbytes} in bufferUpdated(): it must be how many bytes were ` +
          `written into the space from getBuffer(), at most its length ` +
          `(${this.#buffer.length - this.#end})`,
      );
    }
    if (nbytes > 0) this.#added(nbytes);
  }

  /**
   * After `length` bytes were appended: counts them against the server's
   * budget, pauses the transport past twice the limit, answers a waiting read.
   */
  #added(length: number): void {
    this.#end += length;
    if (this.#buffer.length > POOLED_BUFFER_SIZE) this.#recharge();
    if (!this.#paused && this.#transport && this.#end - this.#start > 2 * this.#limit) {
      this.#paused = true;
      this.#transport.pauseReading();
    }
    const pending = this.#pending;
    if (pending !== null) {
      this.#pending = null;
      const n = Math.min(this.#pendingMax, this.#end - this.#start);
      pending(this.#pendingBorrowed ? this.#lend(n) : this.#take(n));
    }
    this.#wake();
  }

  #afterEofError(caller: string): Error {
    return new Error(`Cannot call ${caller}() after feedEof(): no data may follow end of input`);
  }

  /** Marks end of input: reads return what is left, then `null`. */
  feedEof(): void {
    this.#eof = true;
    const pending = this.#pending;
    this.#pending = null;
    pending?.(null);
    this.#wake();
  }

  /** Fails the reader: reads after the buffered bytes are gone reject with `error`. */
  setException(error: Error): void {
    this.#error = error;
    if (this.#pending !== null) {
      this.#pending = null;
      this.#pendingReject(error);
    }
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
    return this.#readUpTo(n, false);
  }

  /**
   * Reads like {@linkcode StreamReader.read}, without copying: the bytes are
   * a view of the reader's buffer, lent until the next read from this reader
   * (any read method). Everything buffered comes at once, up to `n` bytes.
   *
   * The view may be written to any writer, this connection's or another's:
   * a write copies what it cannot send at once. To keep the bytes past the
   * next read, copy them (`view.slice()`).
   *
   * @example Echo without a copy per read
   * ```ts
   * import type { StreamReader, StreamWriter } from "@x/echo";
   *
   * async function echo(reader: StreamReader, writer: StreamWriter): Promise<void> {
   *   for (let view; (view = await reader.readBorrowed()) !== null;) {
   *     writer.write(view);
   *     await writer.drain();
   *   }
   * }
   * ```
   */
  readBorrowed(n: number = Number.MAX_SAFE_INTEGER): Promise<Uint8Array | null> {
    if (n !== Number.MAX_SAFE_INTEGER) {
      try {
        checkInteger("read size", n, 1, 2 ** 53 - 1);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return this.#readUpTo(n, true);
  }

  /**
   * Up to `max` bytes, copied or `borrowed`: at once when any are buffered,
   * else the next data fed (a copy is handed over without buffering when it
   * fits). No `async`: one promise per read, the hot path of the stream API.
   */
  #readUpTo(max: number, borrowed: boolean): Promise<Uint8Array | null> {
    if (this.#lent !== null) this.#takeBack();
    const buffered = this.#end - this.#start;
    if (buffered > 0) {
      const n = Math.min(max, buffered);
      return Promise.resolve(borrowed ? this.#lend(n) : this.#take(n));
    }
    if (this.#eof) return Promise.resolve(null);
    if (this.#error) return Promise.reject(this.#error);
    if (this.#waiter || this.#pending) return Promise.reject(this.#concurrentReadError("read"));
    // A pooled buffer offered to a receive that found nothing: a waiting reader holds none.
    if (this.#buffer !== EMPTY) this.#readOut();
    const { promise, resolve, reject } = Promise.withResolvers<Uint8Array | null>();
    this.#pending = resolve;
    this.#pendingReject = reject;
    this.#pendingMax = max;
    this.#pendingBorrowed = borrowed;
    return promise;
  }

  async #readToEnd(): Promise<Uint8Array | null> {
    if (this.#lent !== null) this.#takeBack();
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
    if (this.#lent !== null) this.#takeBack();
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
      throw new RangeError('Cannot read up to separator "": it is empty; use at least one byte');
    }
    if (this.#lent !== null) this.#takeBack();
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
    return { next: () => this.#readUpTo(Number.MAX_SAFE_INTEGER, false).then(next) };
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

  /** The next `n` bytes as a view, lent until the next read ({@linkcode StreamReader.readBorrowed}). */
  #lend(n: number): Uint8Array {
    const view = this.#buffer.subarray(this.#start, this.#start + n);
    this.#lent = this.#buffer;
    this.#consume(n);
    return view;
  }

  /**
   * Ends the lend of the last borrowed view; every read starts with it. The
   * view's buffer is ours again (writes copy what they keep).
   */
  #takeBack(): void {
    const lent = this.#lent!;
    this.#lent = null;
    if (lent !== this.#buffer) {
      // Data that came during the lend moved to another buffer; this one is spare.
      release(lent);
      this.#recharge();
    } else if (this.#start === this.#end) {
      this.#readOut();
    }
  }

  #consume(n: number): void {
    this.#start += n;
    if (this.#buffer.length > POOLED_BUFFER_SIZE) this.#recharge();
    if (this.#start === this.#end && this.#lent !== this.#buffer) this.#readOut();
    if (this.#paused && this.#end - this.#start <= this.#limit) {
      this.#paused = false;
      this.#transport?.resumeReading();
    }
  }

  /** Everything was read and nothing lent: a pooled buffer goes back, a small one stays. */
  #readOut(): void {
    this.#start = this.#end = 0;
    if (this.#buffer !== EMPTY) {
      release(this.#buffer);
      this.#buffer = EMPTY;
      this.#recharge();
    }
  }

  /**
   * About to wait with a partial message in a large pooled buffer: moves it
   * to a small one, so a connection waiting for the rest of a line holds
   * 16 KiB rather than 256 KiB.
   */
  #shrink(): void {
    const buffered = this.#end - this.#start;
    const old = this.#buffer;
    if (old.length !== POOLED_BUFFER_SIZE || this.#lent === old || buffered > SMALL_BUFFER / 2) {
      return;
    }
    const small = smallBuffers.take();
    small.set(old.subarray(this.#start, this.#end));
    release(old);
    this.#buffer = small;
    this.#start = 0;
    this.#end = buffered;
    this.#recharge();
  }

  /**
   * Counts the buffers this reader holds (its own, and a lent one that data
   * moved away from) against its server's budget. A pooled buffer counts
   * whole, since a partial message holds all of it; a larger one, grown for
   * a long message, counts the bytes in it (the kernel maps its pages as
   * they are written), and is recounted as they arrive.
   */
  #recharge(): void {
    const lent = this.#lent;
    const own = this.#buffer.length > POOLED_BUFFER_SIZE ? this.#end : this.#buffer.length;
    const held = own + (lent !== null && lent !== this.#buffer ? lent.length : 0);
    const delta = held - this.#charged;
    if (delta === 0 || this.#transport === null) return;
    this.#charged = held;
    chargeBuffered(this.#transport, delta);
  }

  #find(sep: Uint8Array, from: number): number {
    return indexOfBytes(this.#buffer, sep, from, this.#end);
  }

  /**
   * Makes room for `length` more bytes after the unread ones: by moving them
   * to the front, or to a bigger buffer. A buffer holding a lent view is
   * never written over; the data moves to another one instead.
   */
  #makeRoom(length: number): void {
    const buffered = this.#end - this.#start;
    const needed = buffered + length;
    const old = this.#buffer;
    if (needed <= old.length && this.#lent !== old) {
      old.copyWithin(0, this.#start, this.#end);
      this.#start = 0;
      this.#end = buffered;
      return;
    }
    this.#buffer = this.#copyUnread(needed);
    this.#recharge();
    if (this.#lent !== old && old !== EMPTY) release(old);
  }

  /** A new buffer with room for `needed` bytes, holding the unread ones at its start. */
  #copyUnread(needed: number): Uint8Array {
    const buffered = this.#end - this.#start;
    let fresh: Uint8Array;
    if (needed > readerBuffers.size) {
      fresh = new Uint8Array(Math.max(needed, 2 * this.#buffer.length));
    } else if (needed > SMALL_BUFFER) {
      fresh = readerBuffers.take();
    } else {
      fresh = smallBuffers.take();
    }
    if (buffered > 0) fresh.set(this.#buffer.subarray(this.#start, this.#end));
    this.#start = 0;
    this.#end = buffered;
    return fresh;
  }

  #concurrentReadError(caller: string): Error {
    return new Error(
      `Cannot call ${caller}() while another read is waiting on this reader: ` +
        `await each read before the next`,
    );
  }

  async #waitForData(caller: string): Promise<void> {
    if (this.#error) throw this.#error;
    if (this.#waiter || this.#pending) throw this.#concurrentReadError(caller);
    this.#shrink();
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
