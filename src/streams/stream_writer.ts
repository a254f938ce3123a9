/**
 * The writing half of the stream-style API, after asyncio's `StreamWriter`.
 *
 * @module
 */

import type { ExtraInfo, ExtraInfoName, Transport } from "../core/protocol.ts";

const encoder = new TextEncoder();
const ignore = () => {};

/**
 * What a {@linkcode StreamWriter} needs to know of its connection's flow
 * control: implemented by the protocol that feeds the stream API. Internal:
 * the constructor spells the same shape out for those who build a writer
 * by hand.
 */
export interface FlowControl {
  /** Resolves when writing may go on; rejects once the connection is lost. */
  waitForDrain(): Promise<void>;
  /**
   * Settles when the connection is lost: resolves after a clean close,
   * rejects with the error that ended it. A writer made without a `closed`
   * promise reads it here on first use (falling back to `transport.closed`),
   * so a connection whose `closed` nobody asks for never makes one.
   */
  readonly closed?: Promise<void>;
}

/**
 * Writes to one connection. `write` never blocks: it buffers. Await
 * {@linkcode StreamWriter.drain} after writes so a slow peer slows you down
 * instead of growing the buffer.
 *
 * @example Answer, then close
 * ```ts
 * import type { StreamReader, StreamWriter } from "@x/echo";
 *
 * async function handler(reader: StreamReader, writer: StreamWriter): Promise<void> {
 *   const line = await reader.readLine();
 *   if (line) writer.write(line);
 *   await writer.drain();
 *   await writer.close();
 * }
 * ```
 */
export class StreamWriter {
  readonly #transport: Transport;
  readonly #flow: FlowControl;
  #closed: Promise<void> | undefined;
  #writable: WritableStream<Uint8Array> | null = null;

  /**
   * Wraps `transport`. Servers and clients make writers; build one by hand only
   * for a custom protocol, whose `flow` says when writing may go on:
   * `flow.waitForDrain()` resolves when it may, and rejects once the
   * connection is lost. `closed` should settle when the connection is lost;
   * without it, the writer's `closed` is `flow.closed`, else `transport.closed`.
   *
   * @example
   * ```ts
   * import { StreamWriter, type Transport } from "@x/echo";
   *
   * function wrap(transport: Transport): StreamWriter {
   *   return new StreamWriter(transport, { waitForDrain: () => Promise.resolve() }, transport.closed);
   * }
   * ```
   */
  constructor(
    transport: Transport,
    flow: { waitForDrain(): Promise<void>; readonly closed?: Promise<void> },
    closed?: Promise<void>,
  ) {
    this.#transport = transport;
    this.#flow = flow;
    if (closed !== undefined) {
      this.#closed = closed;
      // Like a web stream's `closed`, a failure here is reported to those who await it only.
      closed.catch(ignore);
    }
  }

  /** The underlying transport. */
  get transport(): Transport {
    return this.#transport;
  }

  /**
   * Resolves once the connection is closed; rejects with the error that ended
   * it, if one did (a reset, say).
   */
  get closed(): Promise<void> {
    return this.#closed ??= this.#flow.closed ?? this.#transport.closed;
  }

  /**
   * Sends `data` (a string is sent as UTF-8), as the transport's `write`
   * does: what the socket takes now at once, a copy of the rest queued.
   * `data` is yours again when the call returns, so a borrowed view or a
   * reused buffer is safe to write.
   *
   * @throws {TransportClosedError} after `close`, `abort` or `writeEof`.
   */
  write(data: Uint8Array | string): void {
    this.#transport.write(typeof data === "string" ? encoder.encode(data) : data);
  }

  /**
   * Resolves when the write buffer is at or below its low water mark: at once
   * unless the peer is slow.
   *
   * @throws the connection's error, or `Deno.errors.ConnectionReset`, once the connection is lost.
   */
  drain(): Promise<void> {
    return this.#flow.waitForDrain();
  }

  /** Half-closes after the buffered data is sent; reading goes on. */
  writeEof(): void {
    this.#transport.writeEof();
  }

  /** `true`: TCP supports half-close. */
  canWriteEof(): boolean {
    return this.#transport.canWriteEof();
  }

  /**
   * Sends what is buffered, then closes the connection. Resolves when it is
   * closed (rejects if it ended with an error).
   */
  close(): Promise<void> {
    this.#transport.close();
    return this.closed;
  }

  /** Closes the connection at once, dropping buffered data. */
  abort(): void {
    this.#transport.abort();
  }

  /** `true` once `close` or `abort` was called or the connection was lost. */
  isClosing(): boolean {
    return this.#transport.isClosing();
  }

  /** Connection details: `"peername"`, `"sockname"`, `"socketOptions"`, `"proxyHeader"`, `"proxyPeername"` (see {@linkcode Transport.getExtraInfo}). */
  getExtraInfo<K extends ExtraInfoName>(name: K): ExtraInfo[K] {
    return this.#transport.getExtraInfo(name);
  }

  /**
   * The writer as a web `WritableStream`, for `pipeTo` and friends: each chunk
   * is written and drained; closing the stream half-closes the connection
   * (`writeEof`), aborting it aborts the connection at once, even while a
   * write waits for a slow peer to drain.
   */
  get writable(): WritableStream<Uint8Array> {
    return this.#writable ??= new WritableStream<Uint8Array>({
      // A web stream calls its sink's abort only after the write in flight settles,
      // which a peer that does not read never lets happen: act on the signal instead.
      start: (controller) => {
        controller.signal.addEventListener("abort", () => this.abort(), { once: true });
      },
      write: (chunk) => {
        this.write(chunk);
        return this.drain();
      },
      close: () => this.writeEof(),
      abort: () => this.abort(),
    });
  }
}
