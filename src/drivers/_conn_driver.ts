/**
 * The Deno-conn driver: the I/O of a connection on a `Deno.Conn` (the
 * `deno` backend, and every client), with awaited reads and writes: a
 * `Deno.TcpConn`, a `Deno.TlsConn` (whose handshake is over, its outcome in
 * `tls`) or a `Deno.UnixConn`. Deno's `setNoDelay`/`setKeepAlive` exist on
 * TCP conns only; the socket's descriptor is looked up (quick-ack, options
 * per connection, reading them back) for TCP sockets only, TLS's included. One
 * read loop and one write loop per connection; the transport core holds the
 * state, and the write queue this driver sends from.
 *
 * Reads go into a buffer of the connection's own, since a read in flight
 * owns it. Its size follows the traffic: it starts at
 * {@linkcode MIN_READ_BUFFER}, grows fourfold each time a read fills it (up
 * to `readBufferSize`), and halves after a run of reads that used a quarter
 * of it or less. An idle connection therefore holds a small buffer, and a
 * busy one reads its messages whole. (A read in flight cannot be given
 * another buffer: a connection that goes quiet right after large reads
 * keeps its buffer until its next read.)
 *
 * Deno reads a buffer handed to `conn.write` while the write is in flight,
 * so nothing is ever sent from a caller's memory: `trySend` takes nothing,
 * and every write is copied into the queue (asyncio's proactor transports
 * do the same), where small ones are packed together.
 *
 * @module
 */

import type { Driver, SocketTransport } from "../core/_transport.ts";
import type { ConnAddr, TlsInfo } from "../core/protocol.ts";
import { tcpLogger } from "../core/_log.ts";
import { DEFAULT_READ_BUFFER_SIZE } from "../core/options.ts";
import { isLocalCancel } from "../errors.ts";
import {
  findConnectionFd,
  lingerZero,
  readConnectionOptions,
  rearmQuickAck,
  releaseConnectionFd,
  resetThroughDescriptor,
  setConnectionOptions,
} from "../sockopt/_connection.ts";
import { getSocketOptions, type SocketOptionValues } from "../sockopt/read_back.ts";
import type { ConnectionSetup } from "../sockopt/_setup.ts";

/** The read buffer of a connection that has not read much yet: 256 bytes. */
export const MIN_READ_BUFFER = 256;
/** Reads in a row that used at most a quarter of the buffer before it halves. */
const SHRINK_AFTER = 8;
/**
 * How long a read in flight may take to settle before a shutdown's close
 * cancels it: a busy peer's data arrives well within it, and is answered.
 */
export const LAST_READ_WAIT = 200;

/** A {@linkcode Driver} over a `Deno.Conn`. */
export class ConnDriver implements Driver {
  readonly peerAddr: ConnAddr;
  readonly tls: TlsInfo | null;
  readonly #conn: Deno.Conn;
  readonly #local: ConnAddr;
  /** A TCP socket (TLS included): its descriptor can be looked up. */
  readonly #tcp: boolean;
  readonly #setup: ConnectionSetup;
  readonly #maxRead: number;
  #transport!: SocketTransport;
  #buffer: Uint8Array;
  /** The last view of `#buffer` handed on: reads of one size reuse it (no allocation per read). */
  #view: Uint8Array = new Uint8Array(0);
  /** Reads in a row that used a quarter of the buffer or less. */
  #smallReads = 0;
  /** The socket's descriptor once looked up (quick-ack, per-connection options, debug); else -1. */
  #fd = -1;
  /** Wakes the read loop waiting for reading to be on again, or for the close. */
  #wake: (() => void) | null = null;
  #writing = false;
  #closed = false;
  /** `lingerZero` was called: the close resets the connection. */
  #reset = false;
  /** A `conn.read` is awaited, or its bytes are held while reading is paused. */
  #reading = false;
  /** Resolves whoever waits for the read in flight to settle (`settleReads`). */
  #settled: (() => void) | null = null;

  /**
   * Wraps `conn`; `setup` is the socket work left for each connection (see
   * `setUpListener`), `readBufferSize` the largest read (default 64 KiB),
   * `tls` what the handshake of a TLS conn settled.
   */
  constructor(
    conn: Deno.Conn,
    setup: ConnectionSetup,
    readBufferSize: number = DEFAULT_READ_BUFFER_SIZE,
    tls: TlsInfo | null = null,
  ) {
    this.#conn = conn;
    this.peerAddr = connAddr(conn.remoteAddr);
    this.tls = tls;
    this.#local = connAddr(conn.localAddr);
    this.#tcp = this.#local.transport === "tcp";
    this.#setup = setup;
    this.#maxRead = readBufferSize;
    this.#buffer = new Uint8Array(Math.min(MIN_READ_BUFFER, readBufferSize));
  }

  /** The size of the buffer the next read goes into (for tests and benchmarks). */
  get readBufferSize(): number {
    return this.#buffer.length;
  }

  attach(transport: SocketTransport): void {
    this.#transport = transport;
    const setup = this.#setup;
    const peer = transport.peer;
    const conn = this.#conn as Partial<Deno.TcpConn>;
    if (
      (setup.noDelay !== undefined || setup.keepAlive !== undefined) &&
      typeof conn.setNoDelay === "function" && typeof conn.setKeepAlive === "function"
    ) {
      try {
        if (setup.noDelay !== undefined) conn.setNoDelay(setup.noDelay);
        if (setup.keepAlive !== undefined) conn.setKeepAlive(setup.keepAlive);
      } catch (error) {
        // Failing here must not break the callback order (connectionMade comes first).
        tcpLogger.debug("Cannot set socket options of {peer}: {error}", { peer, error });
      }
    }
    const perConnection = setup.perConnection.length > 0;
    if (this.#tcp && (setup.quickAck || perConnection || transport.debug)) {
      this.#fd = findConnectionFd(this.#tcpIdentity());
    }
    if (perConnection && this.#fd >= 0) {
      try {
        setConnectionOptions(this.#fd, setup.perConnection);
      } catch (error) {
        tcpLogger.warning("Cannot set socket options of {peer}: {error}", { peer, error });
      }
    }
    if (transport.debug && this.#fd >= 0) {
      try {
        const values = readConnectionOptions(this.#fd);
        tcpLogger.debug("Socket options of {peer}: {values}", { peer, values });
      } catch (error) {
        tcpLogger.debug("Cannot read socket options of {peer}: {error}", { peer, error });
      }
    }
  }

  start(): void {
    this.#readLoop();
  }

  setReading(): void {
    // The loop looks again at whether to read, and whether it may deliver what it holds.
    this.#wakeUp();
  }

  trySend(): number {
    return 0;
  }

  startWriting(): void {
    if (!this.#writing) this.#writeLoop();
  }

  shutdownWrite(): void {
    this.#conn.closeWrite().catch((error) => {
      if (!this.#closed) this.#transport.fail(error);
    });
  }

  settleReads(): Promise<void> {
    if (!this.#reading || this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, LAST_READ_WAIT);
      const previous = this.#settled;
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#settled = () => {
        previous?.();
        done();
      };
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#reset && !resetThroughDescriptor(this.#fd)) {
      tcpLogger.debug("Cannot reset {peer}: its descriptor could not be replaced; closing", {
        peer: this.#transport.peer,
      });
    }
    // Give the descriptor up first: once closed, the kernel may hand its number to another socket.
    releaseConnectionFd(this.#fd);
    this.#fd = -1;
    try {
      this.#conn.close();
    } catch {
      // Already closed by Deno (the resource is gone); nothing more to release.
    }
    this.#wakeUp();
  }

  /**
   * Deno has no SO_LINGER, and its close sends FIN before it closes the
   * descriptor: the descriptor is found (through FFI and /proc/self/fd, see
   * `findConnectionFd`), the option set on it, and the close resets it
   * through the descriptor before Deno's close (see `resetThroughDescriptor`).
   */
  lingerZero(): boolean {
    if (this.#closed || !this.#tcp) return false; // a Unix socket has no reset
    if (this.#fd < 0) this.#fd = findConnectionFd(this.#tcpIdentity());
    this.#reset = lingerZero(this.#fd);
    return this.#reset;
  }

  localAddr(): ConnAddr {
    return this.#local;
  }

  socketOptions(): SocketOptionValues {
    if (!this.#tcp) {
      throw new Deno.errors.NotSupported(
        "Cannot read the socket options of a Unix socket connection: they are TCP's " +
          "(buffers, TCP_NODELAY, keep-alive); read them on a TCP connection",
      );
    }
    const conn = this.#tcpIdentity();
    if (this.#fd < 0) this.#fd = findConnectionFd(conn);
    // Without a descriptor, getSocketOptions throws the precise reason (no FFI, ...).
    return this.#fd >= 0 ? readConnectionOptions(this.#fd) : getSocketOptions(conn);
  }

  /** The addresses the descriptor lookups go by (a TLS conn's, with their transport put back). */
  #tcpIdentity(): Deno.TcpConn {
    return { localAddr: this.#local, remoteAddr: this.peerAddr } as Deno.TcpConn;
  }

  // ---- Reading -----------------------------------------------------------

  async #readLoop(): Promise<void> {
    const conn = this.#conn;
    const transport = this.#transport;
    const quickAckFd = this.#setup.quickAck ? this.#fd : -1;
    try {
      for (;;) {
        while (!transport.reading) {
          if (this.#closed) return;
          await this.#wakeCall();
        }
        if (this.#closed) return;
        const buffer = this.#buffer;
        const length = transport.readLength(buffer.length);
        this.#reading = true;
        const n = await conn.read(length === buffer.length ? buffer : buffer.subarray(0, length));
        if (transport.holdsReads && !this.#closed && n !== null) {
          // Reading was paused while the read was in flight: hold the bytes (counted
          // against the budget) and deliver them once it resumes.
          transport.charge(n);
          while (transport.holdsReads && !this.#closed) await this.#wakeCall();
          transport.charge(-n);
        }
        while (transport.holdsReads && !this.#closed) await this.#wakeCall();
        this.#reading = false;
        if (n === null) {
          if (this.#closed) return;
          transport.endOfInput();
          this.#settle();
          continue;
        }
        if (quickAckFd >= 0 && !this.#closed) rearmQuickAck(quickAckFd);
        // Delivered even after a close (the transport counts the bytes, then drops them).
        let view = this.#view;
        if (view.length !== n || view.buffer !== buffer.buffer) {
          view = this.#view = buffer.subarray(0, n);
        }
        transport.received(view);
        this.#settle();
        if (this.#closed) return;
        if (length === buffer.length) this.#fit(n);
      }
    } catch (error) {
      if (this.#closed && isLocalCancel(error)) return;
      // A TLS peer that half-closes without close_notify (most clients do): the end of its
      // input, as over plain TCP, so what it sent is still answered, not thrown away.
      if (error instanceof Deno.errors.UnexpectedEof && !this.#closed) {
        this.#reading = false;
        transport.endOfInput();
        return;
      }
      transport.fail(error);
    } finally {
      this.#reading = false;
      this.#settle();
    }
  }

  /** The read in flight has been delivered (or there is none any more). */
  #settle(): void {
    const settled = this.#settled;
    this.#settled = null;
    settled?.();
  }

  /** Sizes the next read's buffer after a read of `n` bytes (see the module documentation). */
  #fit(n: number): void {
    const size = this.#buffer.length;
    if (n === size) {
      this.#smallReads = 0;
      if (size < this.#maxRead) this.#buffer = new Uint8Array(Math.min(this.#maxRead, 4 * size));
    } else if (n <= size >> 2 && size > MIN_READ_BUFFER) {
      if (++this.#smallReads >= SHRINK_AFTER) {
        this.#smallReads = 0;
        this.#buffer = new Uint8Array(Math.max(MIN_READ_BUFFER, size >> 1));
      }
    } else {
      this.#smallReads = 0;
    }
  }

  #wakeCall(): Promise<void> {
    return new Promise((resolve) => (this.#wake = resolve));
  }

  #wakeUp(): void {
    const wake = this.#wake;
    if (wake !== null) {
      this.#wake = null;
      wake();
    }
  }

  // ---- Writing -----------------------------------------------------------

  async #writeLoop(): Promise<void> {
    this.#writing = true;
    const conn = this.#conn;
    const transport = this.#transport;
    const queue = transport.queue;
    try {
      // The view peek() lends stays intact until sent() consumes it, even as writes queue more.
      for (let chunk; (chunk = queue.peek()) !== null;) {
        const n = await conn.write(chunk);
        if (this.#closed) return;
        transport.sent(n);
        if (this.#closed) return;
      }
    } catch (error) {
      if (!this.#closed) transport.fail(error);
    } finally {
      this.#writing = false;
    }
  }
}

/**
 * `addr` as a {@linkcode ConnAddr}: the conn `Deno.startTls` returns
 * reports its addresses without `transport` (Deno 2.9), which is put back.
 */
function connAddr(addr: Deno.Addr): ConnAddr {
  const { transport } = addr as { transport?: string };
  if (transport === undefined && "hostname" in addr) {
    const { hostname, port } = addr as Deno.NetAddr;
    return { transport: "tcp", hostname, port };
  }
  return addr as ConnAddr;
}
