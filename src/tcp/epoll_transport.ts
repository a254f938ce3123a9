/**
 * The TCP transport of the epoll backend: a connection the server accepted
 * itself, driven by the process's {@linkcode Poller}. A readable socket is
 * read once, into the poller's shared buffer and handed to `dataReceived`,
 * or into the buffer a {@linkcode BufferedProtocol} lends. A write goes
 * straight to the socket; what the kernel does not take is queued (copied
 * when it is in the shared buffer, which the next read reuses) and sent
 * when the socket is writable again.
 * The callback order and flow control are those of {@linkcode TcpTransport}.
 *
 * @module
 */

import type { BufferedProtocol, ExtraInfo, ExtraInfoName, Protocol } from "./protocol.ts";
import { resolveWaterMarks, validateWaterMarks, type WaterMarks } from "../water_marks.ts";
import { tcpLogger } from "./_log.ts";
import {
  asBufferedProtocol,
  deliverConnectionLost,
  receiveBuffer,
  reportFailure,
  unknownExtraInfo,
} from "./_transport_shared.ts";
import { formatAddress } from "../_address.ts";
import { TransportClosedError } from "../errors.ts";
import {
  localAddress,
  readConnectionOptions,
  rearmQuickAck,
  setConnectionOptions,
} from "../sockopt/connection.ts";
import type { ConnectionSetup } from "../sockopt/setup.ts";
import type { IdleClock } from "./idle.ts";
import { MIN_SHARED_BUFFER, type Poller, type PollTarget } from "../poll/poller.ts";
import {
  EAGAIN,
  EINTR,
  EPOLLERR,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  type IoSymbols,
  MSG_NOSIGNAL,
  SHUT_WR,
  sizeArgument,
} from "../poll/syscalls.ts";
import type { ServerTransport, TransportHooks, TransportOptions } from "./transport.ts";

const READ_EVENTS = EPOLLIN | EPOLLHUP | EPOLLERR;
const WRITE_EVENTS = EPOLLOUT | EPOLLHUP | EPOLLERR;

/** A {@linkcode Transport} over a socket descriptor the server accepted through epoll. */
export class EpollTransport implements ServerTransport, PollTarget {
  readonly #fd: number;
  readonly #poller: Poller;
  readonly #calls: IoSymbols;
  readonly #protocol: Protocol;
  /** The protocol again when it lends its own buffers to read into (asyncio's BufferedProtocol). */
  readonly #bufferedProtocol: BufferedProtocol | null;
  /** The most bytes one read takes. */
  readonly #readLength: number;
  /** The same, as the bigint FFI wants. */
  readonly #readSize: bigint;
  readonly #onClosed: ((transport: ServerTransport) => void) | undefined;
  readonly #idle: IdleClock | null;
  readonly #setup: ConnectionSetup;
  readonly #quickAck: boolean;
  readonly #debug: boolean;
  readonly #info: boolean;
  /** The idle clock's tick at the last read or write (see `idle.ts`). */
  lastActive = 0;
  /** Bytes read from the socket so far. */
  bytesReceived = 0;
  /** Bytes the socket has taken so far. */
  bytesSent = 0;
  readonly #peerAddr: Deno.NetAddr;
  #localAddr: Deno.NetAddr | null = null;
  #peer = "";

  // Write side: what the kernel did not take yet, oldest first.
  #queue: Uint8Array[] = [];
  #queueHead = 0;
  #buffered = 0;
  #high: number;
  #low: number;
  #writingPaused = false;
  #eofWritten = false;
  #eofSent = false;

  // Read side.
  #readingPaused = false;
  #lastRead = false;
  #eofReceived = false;

  // Life cycle.
  #closing = false;
  #closeReason = "";
  #failure: Error | undefined;
  #lost = false;
  /** Registered with the poller (after `connectionMade`). */
  #registered = false;
  /** Made when first asked for: most connections never are, and 10,000 idle ones add up. */
  #closed: PromiseWithResolvers<void> | null = null;
  /** `connectionLost` has returned. */
  #done = false;

  /**
   * Wraps the accepted socket `fd` (non-blocking) for `protocol`; nothing
   * happens until {@linkcode EpollTransport.start}. `peer` is the address
   * `accept4` reported.
   */
  constructor(
    fd: number,
    peer: Deno.NetAddr,
    poller: Poller,
    protocol: Protocol,
    options: TransportOptions,
    setup: ConnectionSetup,
    hooks: TransportHooks = {},
  ) {
    this.#fd = fd;
    this.#peerAddr = peer;
    this.#poller = poller;
    this.#calls = poller.libc.symbols;
    this.#protocol = protocol;
    this.#bufferedProtocol = asBufferedProtocol(protocol);
    const readSize = options.readBufferSize ?? MIN_SHARED_BUFFER;
    if (this.#bufferedProtocol === null) poller.reserveReadBuffer(readSize);
    this.#readLength = readSize;
    this.#readSize = BigInt(readSize);
    const marks = resolveWaterMarks(options.highWaterMark, options.lowWaterMark);
    this.#high = marks.high;
    this.#low = marks.low;
    this.#onClosed = hooks.onClosed;
    this.#idle = hooks.idle ?? null;
    this.lastActive = this.#idle?.tick ?? 0;
    this.#setup = setup;
    this.#quickAck = setup.quickAck;
    this.#debug = tcpLogger.isEnabledFor("debug");
    this.#info = tcpLogger.isEnabledFor("info");
  }

  get closed(): Promise<void> {
    if (this.#closed === null) {
      this.#closed = Promise.withResolvers<void>();
      if (this.#done) this.#closed.resolve();
    }
    return this.#closed.promise;
  }

  /** The peer address as `host:port`, for log lines and errors. */
  get peer(): string {
    return this.#peer ||= formatAddress(this.#peerAddr);
  }

  /** Applies the per-connection options, calls `connectionMade` and starts reading. */
  start(): void {
    this.#applySetup();
    if (this.#info) tcpLogger.info("Connection made with {peer}", { peer: this.peer });
    try {
      this.#protocol.connectionMade?.(this);
    } catch (error) {
      this.#fail(error, "connectionMade");
      return;
    }
    if (this.#lost) return;
    try {
      this.#poller.add(this.#fd, this, this.#wantedEvents());
      this.#registered = true;
    } catch (error) {
      this.#fail(error);
    }
  }

  #applySetup(): void {
    const { noDelay, keepAlive, perConnection } = this.#setup;
    try {
      if (perConnection.length > 0) setConnectionOptions(this.#fd, perConnection);
      // Set on the listener whenever FFI works, which epoll needs: only a fallback left them here.
      if (noDelay !== undefined) setConnectionOptions(this.#fd, [["noDelay", "noDelay", noDelay]]);
      if (keepAlive !== undefined) {
        setConnectionOptions(this.#fd, [["keepAlive", "keepAlive", keepAlive]]);
      }
    } catch (error) {
      tcpLogger.warning("Cannot set socket options of {peer}: {error}", { peer: this.peer, error });
    }
    if (this.#debug) {
      try {
        const values = readConnectionOptions(this.#fd);
        tcpLogger.debug("Socket options of {peer}: {values}", { peer: this.peer, values });
      } catch (error) {
        tcpLogger.debug("Cannot read socket options of {peer}: {error}", {
          peer: this.peer,
          error,
        });
      }
    }
  }

  // ---- Transport ---------------------------------------------------------

  write(data: Uint8Array): void {
    if (this.#closing || this.#eofWritten) {
      throw new TransportClosedError(this.#closeReason || "writeEof() was called", {
        cause: this.#failure,
      });
    }
    let length = data.length;
    if (length === 0) return;
    if (this.#buffered === 0) {
      // Nothing queued: the socket is most likely writable, so try it now.
      const sent = this.#calls.send(this.#fd, data, sizeArgument(length), MSG_NOSIGNAL);
      if (sent === length) {
        this.bytesSent += length;
        if (this.#idle !== null) this.lastActive = this.#idle.tick;
        if (this.#debug) this.#logSent(length);
        return;
      }
      if (sent < 0) {
        const code = this.#poller.libc.errno();
        if (code !== EAGAIN && code !== EINTR) {
          return this.#fail(this.#poller.libc.error(code, "send"));
        }
      } else {
        this.bytesSent += sent;
        if (this.#debug) this.#logSent(sent);
        data = data.subarray(sent);
        length -= sent;
      }
    }
    // The shared read buffer is reused by the next read: keep a copy of what came from it.
    this.#queue.push(data.buffer === this.#poller.readBuffer.buffer ? data.slice() : data);
    const wasEmpty = this.#buffered === 0;
    this.#buffered += length;
    if (wasEmpty) this.#updateEvents();
    if (!this.#writingPaused && this.#buffered > this.#high) {
      this.#writingPaused = true;
      this.#callback("pauseWriting");
    }
  }

  writeEof(): void {
    if (this.#closing || this.#eofWritten) return;
    this.#eofWritten = true;
    if (this.#buffered === 0) this.#sendEof();
  }

  canWriteEof(): boolean {
    return true;
  }

  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#closeReason = "close() was called";
    if (this.#buffered === 0) this.#connectionLost(undefined);
    else this.#updateEvents();
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
    if (this.#closing || this.#readingPaused) return;
    this.#readingPaused = true;
    this.#updateEvents();
  }

  resumeReading(): void {
    if (!this.#readingPaused) return;
    this.#readingPaused = false;
    this.#updateEvents();
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
        return this.#peerAddr as ExtraInfo[K];
      case "sockname":
        return this.#sockname() as ExtraInfo[K];
      case "socketOptions":
        if (this.#lost) {
          throw new Deno.errors.BadResource(
            `Cannot read the socket options of the connection with ${this.peer}: it is closed.`,
          );
        }
        return readConnectionOptions(this.#fd) as ExtraInfo[K];
      default:
        throw unknownExtraInfo(name);
    }
  }

  #sockname(): Deno.NetAddr {
    if (this.#localAddr === null && !this.#lost) {
      this.#localAddr = localAddress(this.#fd);
    }
    if (this.#localAddr === null) {
      throw new Deno.errors.BadResource(
        `Cannot read the local address of the connection with ${this.peer}: it is closed.`,
      );
    }
    return this.#localAddr;
  }

  /** Shutdown's first step: read no more (reads are never in flight here). */
  readLast(): void {
    this.#lastRead = true;
    this.#updateEvents();
  }

  /** See {@linkcode TcpTransport.closeIdle}. */
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

  // ---- Events ------------------------------------------------------------

  /** Called by the poller with the ready events. */
  onEvents(events: number): void {
    if ((events & WRITE_EVENTS) !== 0 && this.#buffered > 0) this.#flush();
    if ((events & READ_EVENTS) !== 0 && this.#reading()) this.#read();
  }

  #reading(): boolean {
    return !this.#closing && !this.#readingPaused && !this.#eofReceived && !this.#lastRead;
  }

  #wantedEvents(): number {
    return (this.#reading() ? EPOLLIN : 0) | (this.#buffered > 0 ? EPOLLOUT : 0);
  }

  #updateEvents(): void {
    if (this.#lost || !this.#registered) return;
    try {
      this.#poller.modify(this.#fd, this.#wantedEvents());
    } catch (error) {
      this.#fail(error);
    }
  }

  #read(): void {
    if (this.#bufferedProtocol !== null) return this.#readIntoProtocol(this.#bufferedProtocol);
    const buffer = this.#poller.readBuffer;
    const n = this.#calls.recv(this.#fd, buffer, this.#readSize, 0);
    if (n > 0) {
      this.#received(n);
      try {
        this.#protocol.dataReceived?.(this.#poller.readView(n));
      } catch (error) {
        this.#fail(error, "dataReceived");
      }
    } else {
      this.#readEnded(n);
    }
  }

  /** A read straight into the buffer the protocol lends. */
  #readIntoProtocol(protocol: BufferedProtocol): void {
    let buffer: Uint8Array;
    try {
      buffer = receiveBuffer(protocol, this.#readLength);
    } catch (error) {
      return this.#fail(error, "getBuffer");
    }
    const length = Math.min(buffer.length, this.#readLength);
    const n = this.#calls.recv(this.#fd, buffer, sizeArgument(length), 0);
    if (n > 0) {
      this.#received(n);
      try {
        protocol.bufferUpdated(n);
      } catch (error) {
        this.#fail(error, "bufferUpdated");
      }
    } else {
      this.#readEnded(n);
    }
  }

  #received(n: number): void {
    this.bytesReceived += n;
    this.#poller.delivered += n;
    if (this.#idle !== null) this.lastActive = this.#idle.tick;
    if (this.#quickAck) rearmQuickAck(this.#fd);
    if (this.#debug) {
      tcpLogger.debug("Received {bytes} bytes from {peer}", { bytes: n, peer: this.peer });
    }
  }

  /** After a `recv` that returned `n` ≤ 0: end of input, or an error unless it would block. */
  #readEnded(n: number): void {
    if (n === 0) return this.#endOfInput();
    const code = this.#poller.libc.errno();
    if (code !== EAGAIN && code !== EINTR) this.#fail(this.#poller.libc.error(code, "recv"));
  }

  #endOfInput(): void {
    this.#eofReceived = true;
    // A socket at end of input stays readable: stop watching it for that.
    this.#updateEvents();
    if (this.#debug) tcpLogger.debug("End of input from {peer}", { peer: this.peer });
    let keepOpen: boolean | void;
    try {
      keepOpen = this.#protocol.eofReceived?.();
    } catch (error) {
      return this.#fail(error, "eofReceived");
    }
    if (!keepOpen || this.#eofSent) this.close();
  }

  #flush(): void {
    const queue = this.#queue;
    const calls = this.#calls;
    const fd = this.#fd;
    while (this.#queueHead < queue.length) {
      const chunk = queue[this.#queueHead];
      const sent = calls.send(fd, chunk, sizeArgument(chunk.length), MSG_NOSIGNAL);
      if (sent < 0) {
        const code = this.#poller.libc.errno();
        if (code === EAGAIN || code === EINTR) break;
        return this.#fail(this.#poller.libc.error(code, "send"));
      }
      this.#buffered -= sent;
      this.bytesSent += sent;
      if (this.#idle !== null) this.lastActive = this.#idle.tick;
      if (this.#debug) this.#logSent(sent);
      if (sent < chunk.length) {
        queue[this.#queueHead] = chunk.subarray(sent);
        break;
      }
      this.#queueHead++;
    }
    if (this.#queueHead === queue.length) {
      queue.length = 0;
      this.#queueHead = 0;
    }
    if (this.#writingPaused && this.#buffered <= this.#low) {
      this.#writingPaused = false;
      this.#callback("resumeWriting");
      if (this.#lost) return;
    }
    if (this.#buffered > 0) return;
    if (this.#closing) return this.#connectionLost(undefined);
    this.#updateEvents();
    if (this.#eofWritten && !this.#eofSent) this.#sendEof();
  }

  #logSent(bytes: number): void {
    tcpLogger.debug("Sent {bytes} bytes to {peer}", { bytes, peer: this.peer });
  }

  #sendEof(): void {
    if (this.#calls.shutdown(this.#fd, SHUT_WR) < 0) {
      return this.#fail(this.#poller.libc.error(this.#poller.libc.errno(), "shutdown"));
    }
    this.#eofSent = true;
    if (this.#eofReceived) this.close();
  }

  // ---- Closing -----------------------------------------------------------

  #callback(name: "pauseWriting" | "resumeWriting"): void {
    try {
      this.#protocol[name]?.();
    } catch (error) {
      this.#fail(error, name);
    }
  }

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
    this.#poller.remove(this.#fd);
    this.#calls.close(this.#fd);
    deliverConnectionLost(this.#protocol, error, this, this.#info, () => {
      this.#onClosed?.(this);
      this.#done = true;
      this.#closed?.resolve();
    });
  }
}
