/**
 * The TCP transport: one read loop and one write path per connection.
 *
 * @module
 */

import type { ExtraInfo, ExtraInfoName, Protocol, Transport } from "./protocol.ts";
import { resolveWaterMarks, validateWaterMarks, type WaterMarks } from "../water_marks.ts";
import { tcpLogger } from "./_log.ts";
import {
  asBufferedProtocol,
  copyIntoProtocol,
  deliverConnectionLost,
  reportFailure,
  unknownExtraInfo,
} from "./_transport_shared.ts";
import { formatAddress } from "../_address.ts";
import { checkInteger } from "../_validate.ts";
import { isLocalCancel, TransportClosedError } from "../errors.ts";
import {
  findConnectionFd,
  readConnectionOptions,
  rearmQuickAck,
  releaseConnectionFd,
  setConnectionOptions,
} from "../sockopt/connection.ts";
import { getSocketOptions } from "../sockopt/read_back.ts";
import type { ConnectionSetup } from "../sockopt/setup.ts";
import type { IdleClock, IdleTracked } from "./idle.ts";

/**
 * The default size of a connection's read buffer on the `deno` backend
 * (and for clients): 64 KiB, the most one `dataReceived` call gets. The
 * `epoll` backend reads into one buffer shared by all connections and takes
 * up to 256 KiB per read unless `readBufferSize` is given.
 *
 * @example A smaller buffer for many connections with small messages
 * ```ts
 * import { DEFAULT_READ_BUFFER_SIZE, serveEcho } from "@x/echo";
 *
 * const server = serveEcho({ port: 0, readBufferSize: DEFAULT_READ_BUFFER_SIZE / 16 });
 * await server.shutdown();
 * ```
 */
export const DEFAULT_READ_BUFFER_SIZE = 64 * 1024;

/**
 * Options of a TCP transport, shared by servers and clients.
 *
 * @example
 * ```ts
 * import type { TransportOptions } from "@x/echo";
 *
 * const options: TransportOptions = { readBufferSize: 16 * 1024, highWaterMark: 256 * 1024 };
 * ```
 */
export interface TransportOptions {
  /**
   * Bytes read from the socket at most per `dataReceived` call. Default 65536,
   * a buffer per connection; on a server's `epoll` backend 262144, from one
   * buffer all connections share.
   */
  readBufferSize?: number;
  /** Write-buffer size past which `pauseWriting` is called. Default 65536. */
  highWaterMark?: number;
  /** Write-buffer size at which `resumeWriting` is called. Default a quarter of the high mark. */
  lowWaterMark?: number;
}

/**
 * Checks transport options up front, so a bad value fails before any socket
 * is opened, with a message naming the option and the allowed range.
 */
export function validateTransportOptions(options: TransportOptions): void {
  const { readBufferSize, highWaterMark, lowWaterMark } = options;
  if (readBufferSize !== undefined) {
    checkInteger("readBufferSize", readBufferSize, 1, 2 ** 30);
  }
  validateWaterMarks(highWaterMark, lowWaterMark);
}

/** What a server needs of a transport, on either backend. */
export interface ServerTransport extends Transport, IdleTracked {
  /** Bytes read from the socket so far. */
  readonly bytesReceived: number;
  /** Bytes the socket has taken so far. */
  readonly bytesSent: number;
  /** Resolves once the connection is closed and `connectionLost` has returned. */
  readonly closed: Promise<void>;
  /** Calls `connectionMade` and starts reading. */
  start(): void;
  /** Shutdown's first step: deliver what was already read, then read no more. */
  readLast(): void;
}

/** What a server asks of each of its transports. */
export interface TransportHooks {
  /** Runs once the connection is closed and `connectionLost` has returned. */
  onClosed?: (transport: ServerTransport) => void;
  /** The server's idle clock, when it closes quiet connections. */
  idle?: IdleClock;
}

/**
 * A {@linkcode Transport} over a `Deno.TcpConn`. Servers and clients make
 * these; user code only sees the {@linkcode Transport} interface.
 */
export class TcpTransport implements ServerTransport {
  readonly #conn: Deno.TcpConn;
  readonly #protocol: Protocol;
  readonly #readBuffer: Uint8Array;
  readonly #onClosed: ((transport: ServerTransport) => void) | undefined;
  readonly #idle: IdleClock | null;
  /** The idle clock's tick at the last read or write (see `idle.ts`). */
  lastActive = 0;
  /** Bytes read from the socket so far. */
  bytesReceived = 0;
  /** Bytes the socket has taken so far. */
  bytesSent = 0;
  readonly #debug: boolean;
  readonly #info: boolean;
  readonly #setup: ConnectionSetup;
  /** The socket's descriptor once looked up (quick-ack, debug log, socketOptions); else -1. */
  #fd = -1;
  #peer = "";

  // Write side.
  #queue: Uint8Array[] = [];
  #queueHead = 0;
  #buffered = 0;
  #flushing: Promise<void> | null = null;
  /** A queued chunk is a view of the read buffer: read no more until it is sent. */
  #holdsReadBuffer = false;
  #high: number;
  #low: number;
  #writingPaused = false;
  #eofWritten = false;
  #eofSent = false;

  // Read side.
  #readingPaused = false;
  /** Set by a server shutting down: deliver what a read in flight brings, read no more. */
  #lastRead = false;
  #wakeReader: (() => void) | null = null;
  #eofReceived = false;

  // Life cycle.
  #closing = false;
  #closeReason = "";
  /** The error that broke the connection, if one did. */
  #failure: Error | undefined;
  #lost = false;
  readonly #closed: PromiseWithResolvers<void> = Promise.withResolvers<void>();

  /**
   * Wraps `conn` for `protocol`; nothing happens until {@linkcode TcpTransport.start}.
   * `setup` is the socket work left for each connection (see `setUpListener`).
   */
  constructor(
    conn: Deno.TcpConn,
    protocol: Protocol,
    options: TransportOptions,
    setup: ConnectionSetup,
    hooks: TransportHooks = {},
  ) {
    this.#conn = conn;
    this.#protocol = protocol;
    this.#readBuffer = new Uint8Array(options.readBufferSize ?? DEFAULT_READ_BUFFER_SIZE);
    const marks = resolveWaterMarks(options.highWaterMark, options.lowWaterMark);
    this.#high = marks.high;
    this.#low = marks.low;
    this.#onClosed = hooks.onClosed;
    this.#idle = hooks.idle ?? null;
    this.lastActive = this.#idle?.tick ?? 0;
    this.#setup = setup;
    this.#debug = tcpLogger.isEnabledFor("debug");
    this.#info = tcpLogger.isEnabledFor("info");
  }

  get closed(): Promise<void> {
    return this.#closed.promise;
  }

  /** The peer address as `host:port`, for log lines and errors. */
  get peer(): string {
    return this.#peer ||= formatAddress(this.#conn.remoteAddr);
  }

  /** Calls `connectionMade` and starts the read loop. */
  start(): void {
    const setup = this.#setup;
    if (setup.noDelay !== undefined || setup.keepAlive !== undefined) this.#setNatively(setup);
    const perConnection = setup.perConnection.length > 0;
    if (setup.quickAck || perConnection || this.#debug) this.#fd = findConnectionFd(this.#conn);
    if (perConnection && this.#fd >= 0) this.#setThroughFfi(setup);
    if (this.#debug && this.#fd >= 0) this.#logSocketOptions();
    if (this.#info) tcpLogger.info("Connection made with {peer}", { peer: this.peer });
    try {
      this.#protocol.connectionMade?.(this);
    } catch (error) {
      this.#fail(error, "connectionMade");
      return;
    }
    if (!this.#closing) this.#readLoop();
  }

  /** The options Deno sets itself, when FFI could not set them on the listener. */
  #setNatively({ noDelay, keepAlive }: ConnectionSetup): void {
    try {
      if (noDelay !== undefined) this.#conn.setNoDelay(noDelay);
      if (keepAlive !== undefined) this.#conn.setKeepAlive(keepAlive);
    } catch (error) {
      // Failing here must not break the callback order (connectionMade comes first).
      tcpLogger.debug("Cannot set socket options of {peer}: {error}", { peer: this.peer, error });
    }
  }

  #logSocketOptions(): void {
    try {
      const values = readConnectionOptions(this.#fd);
      tcpLogger.debug("Socket options of {peer}: {values}", { peer: this.peer, values });
    } catch (error) {
      tcpLogger.debug("Cannot read socket options of {peer}: {error}", { peer: this.peer, error });
    }
  }

  /** What the listener did not pass on to this connection, on this system. */
  #setThroughFfi({ perConnection }: ConnectionSetup): void {
    try {
      setConnectionOptions(this.#fd, perConnection);
    } catch (error) {
      tcpLogger.warning("Cannot set socket options of {peer}: {error}", { peer: this.peer, error });
    }
  }

  // ---- Transport ---------------------------------------------------------

  write(data: Uint8Array): void {
    if (this.#closing || this.#eofWritten) {
      throw new TransportClosedError(this.#closeReason || "writeEof() was called", {
        cause: this.#failure,
      });
    }
    const length = data.length;
    if (length === 0) return;
    if (data.buffer === this.#readBuffer.buffer) this.#holdsReadBuffer = true;
    this.#queue.push(data);
    this.#buffered += length;
    if (this.#flushing === null) this.#flushing = this.#flush();
    if (!this.#writingPaused && this.#buffered > this.#high) {
      this.#writingPaused = true;
      this.#callback("pauseWriting");
    }
  }

  writeEof(): void {
    if (this.#closing || this.#eofWritten) return;
    this.#eofWritten = true;
    if (this.#flushing === null) this.#sendEof();
  }

  canWriteEof(): boolean {
    return true;
  }

  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#closeReason = "close() was called";
    this.#wakeReader?.();
    if (this.#flushing === null) this.#connectionLost(undefined);
  }

  abort(): void {
    if (this.#lost) return;
    this.#closeReason ||= "abort() was called";
    this.#connectionLost(undefined);
  }

  isClosing(): boolean {
    return this.#closing;
  }

  pauseReading(): void {
    if (!this.#closing) this.#readingPaused = true;
  }

  resumeReading(): void {
    this.#readingPaused = false;
    this.#wakeReader?.();
  }

  isReading(): boolean {
    return !this.#closing && !this.#readingPaused && !this.#eofReceived;
  }

  getWriteBufferSize(): number {
    return this.#buffered;
  }

  getWriteBufferLimits(): WaterMarks {
    return { high: this.#high, low: this.#low };
  }

  setWriteBufferLimits(limits: Partial<WaterMarks> = {}): void {
    const { high, low } = limits;
    const marks = validateWaterMarks(high, low, "high water mark", "low water mark");
    this.#high = marks.high;
    this.#low = marks.low;
    if (!this.#writingPaused && this.#buffered > this.#high) {
      this.#writingPaused = true;
      this.#callback("pauseWriting");
    } else if (this.#writingPaused && this.#buffered <= this.#low) {
      this.#writingPaused = false;
      this.#callback("resumeWriting");
    }
  }

  getExtraInfo<K extends ExtraInfoName>(name: K): ExtraInfo[K] {
    switch (name) {
      case "peername":
        return this.#conn.remoteAddr as ExtraInfo[K];
      case "sockname":
        return this.#conn.localAddr as ExtraInfo[K];
      case "socketOptions":
        return this.#socketOptions() as ExtraInfo[K];
      default:
        throw unknownExtraInfo(name);
    }
  }

  #socketOptions(): ExtraInfo["socketOptions"] {
    if (this.#lost) {
      throw new Deno.errors.BadResource(
        `Cannot read the socket options of the connection with ${this.peer}: it is closed.`,
      );
    }
    if (this.#fd < 0) this.#fd = findConnectionFd(this.#conn);
    // Without a descriptor, getSocketOptions throws the precise reason (no FFI, ...).
    return this.#fd >= 0 ? readConnectionOptions(this.#fd) : getSocketOptions(this.#conn);
  }

  /**
   * The first step of a server's graceful shutdown: read no more, but still
   * deliver the data of a read already in flight. Deno may have completed
   * that read without our having seen it yet: closing under it would drop
   * bytes the peer sent and we took from the kernel, and the peer would see a
   * clean close instead of a reset. The server calls `close()` a turn later.
   */
  readLast(): void {
    this.#lastRead = true;
  }

  /**
   * Called by the idle clock when nothing was read or written for a whole
   * timeout: closes gracefully, or, called again because that close makes no
   * progress either (a peer that never reads), aborts. `true` the first time.
   */
  closeIdle(): boolean {
    if (this.#lost) return false;
    if (this.#closing) {
      tcpLogger.debug("Aborting {peer}: its close could not flush in time", { peer: this.peer });
      this.abort();
      return false;
    }
    tcpLogger.debug("Closing {peer}: quiet for the idle timeout", { peer: this.peer });
    this.close();
    return true;
  }

  // ---- Reading -----------------------------------------------------------

  async #readLoop(): Promise<void> {
    const conn = this.#conn;
    const buffer = this.#readBuffer;
    const protocol = this.#protocol;
    const buffered = asBufferedProtocol(protocol);
    const quickAckFd = this.#setup.quickAck ? this.#fd : -1;
    const idle = this.#idle;
    try {
      while (!this.#closing) {
        // A queued write still refers to the read buffer: it must go out first.
        while (this.#holdsReadBuffer && this.#flushing !== null) await this.#flushing;
        if (this.#readingPaused) await this.#waitForResume();
        if (this.#closing || this.#lastRead) return;
        const n = await conn.read(buffer);
        if (n !== null) this.bytesReceived += n; // counted even if a close makes us drop it
        if (this.#closing) return;
        if (n === null) return this.#endOfInput();
        if (idle !== null) this.lastActive = idle.tick;
        if (quickAckFd >= 0) rearmQuickAck(quickAckFd);
        if (this.#readingPaused) await this.#waitForResume();
        if (this.#closing) return;
        if (this.#debug) {
          tcpLogger.debug("Received {bytes} bytes from {peer}", { bytes: n, peer: this.peer });
        }
        if (buffered !== null) {
          try {
            copyIntoProtocol(buffered, buffer.subarray(0, n));
          } catch (error) {
            return this.#fail(error, "getBuffer/bufferUpdated");
          }
        } else {
          try {
            protocol.dataReceived?.(buffer.subarray(0, n));
          } catch (error) {
            return this.#fail(error, "dataReceived");
          }
        }
      }
    } catch (error) {
      if (this.#closing && isLocalCancel(error)) return;
      this.#fail(error);
    }
  }

  #waitForResume(): Promise<void> {
    return new Promise((resolve) => {
      this.#wakeReader = () => {
        this.#wakeReader = null;
        resolve();
      };
    });
  }

  #endOfInput(): void {
    this.#eofReceived = true;
    if (this.#debug) tcpLogger.debug("End of input from {peer}", { peer: this.peer });
    let keepOpen: boolean | void;
    try {
      keepOpen = this.#protocol.eofReceived?.();
    } catch (error) {
      return this.#fail(error, "eofReceived");
    }
    if (!keepOpen || this.#eofSent) this.close();
  }

  // ---- Writing -----------------------------------------------------------

  async #flush(): Promise<void> {
    const conn = this.#conn;
    const queue = this.#queue;
    const idle = this.#idle;
    try {
      while (this.#queueHead < queue.length) {
        const chunk = queue[this.#queueHead];
        let offset = 0;
        while (offset < chunk.length) {
          const n = await conn.write(offset === 0 ? chunk : chunk.subarray(offset));
          if (this.#lost) return;
          offset += n;
          this.#buffered -= n;
          this.bytesSent += n;
          if (idle !== null) this.lastActive = idle.tick;
        }
        if (this.#debug) {
          tcpLogger.debug("Sent {bytes} bytes to {peer}", { bytes: offset, peer: this.peer });
        }
        if (++this.#queueHead === queue.length) {
          queue.length = 0;
          this.#queueHead = 0;
        }
        if (this.#writingPaused && this.#buffered <= this.#low) {
          this.#writingPaused = false;
          this.#callback("resumeWriting");
          if (this.#lost) return;
        }
      }
    } catch (error) {
      if (!this.#lost) this.#fail(error);
      return;
    }
    this.#flushing = null;
    this.#holdsReadBuffer = false;
    if (this.#closing) this.#connectionLost(undefined);
    else if (this.#eofWritten && !this.#eofSent) this.#sendEof();
  }

  #sendEof(): void {
    try {
      this.#conn.closeWrite();
    } catch (error) {
      return this.#fail(error);
    }
    this.#eofSent = true;
    if (this.#eofReceived) this.close();
  }

  // ---- Closing -----------------------------------------------------------

  /** Calls an optional flow-control callback, aborting the connection if it throws. */
  #callback(name: "pauseWriting" | "resumeWriting"): void {
    try {
      this.#protocol[name]?.();
    } catch (error) {
      this.#fail(error, name);
    }
  }

  /** Aborts the connection because of `error`, which `connectionLost` then receives. */
  #fail(cause: unknown, callback?: string): void {
    if (this.#lost) return;
    const error = reportFailure(cause, this.peer, callback);
    this.#closeReason ||= `the connection failed (${error.message})`;
    this.#failure ??= error;
    this.#connectionLost(error);
  }

  #connectionLost(error: Error | undefined): void {
    if (this.#lost) return;
    this.#lost = true;
    this.#closing = true;
    this.#closeReason ||= "the connection is closed";
    this.#queue.length = 0;
    this.#queueHead = 0;
    this.#buffered = 0;
    this.#flushing = null;
    this.#holdsReadBuffer = false;
    // Give the descriptor up first: once closed, the kernel may hand its number to another socket.
    releaseConnectionFd(this.#fd);
    this.#fd = -1;
    try {
      this.#conn.close();
    } catch {
      // Already closed by Deno (the resource is gone); nothing more to release.
    }
    this.#wakeReader?.();
    deliverConnectionLost(this.#protocol, error, this, this.#info, () => {
      this.#onClosed?.(this);
      this.#closed.resolve();
    });
  }
}
