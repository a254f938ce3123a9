/**
 * The transport core: the state machine of one connection, written once
 * for every kind of socket. It keeps the callback order, the write queue
 * and its water marks, pausing and resuming reads, half-close,
 * close/abort/failure, idle bookkeeping, the byte counters and the
 * connection's share of its server's {@linkcode BufferBudget}.
 *
 * The I/O is a {@linkcode Driver}'s: `drivers/conn_driver.ts` over a
 * `Deno.Conn` (awaited reads and writes) and `drivers/epoll_driver.ts` over
 * a descriptor driven by the poller (reads and writes when the socket is
 * ready). This is the split of asyncio's `_FlowControlMixin` and
 * `_SelectorTransport`, and of uvloop's `UVBaseTransport` and `UVStream`.
 *
 * @module
 */

import type {
  BufferedProtocol,
  ConnAddr,
  ExtraInfo,
  ExtraInfoName,
  Protocol,
  TlsInfo,
  Transport,
} from "./protocol.ts";
import { resolveWaterMarks, validateWaterMarks, type WaterMarks } from "./water_marks.ts";
import { WriteQueue } from "./_write_queue.ts";
import { type BudgetHolder, type BufferBudget, SPENT_BUDGET_READ } from "./budget.ts";
import type { IdleClock, IdleTracked } from "./_idle.ts";
import { tcpLogger } from "./_log.ts";
import type { TransportOptions } from "./options.ts";
import { formatAddress } from "../_address.ts";
import { isPeerFault, TransportClosedError } from "../errors.ts";
import type { SocketOptionValues } from "../sockopt/read_back.ts";
import type { ProxyHeader } from "../proxy/header.ts";
import { ProxyHeaderReader } from "../proxy/parse.ts";
import { type FinishesOnLastRead, lastRead } from "./_last_read.ts";

/**
 * The I/O of one connection, for a {@linkcode SocketTransport}. A driver is
 * made for a socket (an accepted or connected one), attached to the
 * transport that will serve it, and from then on reports what the socket
 * does through the transport's driver methods (`received`, `sent`, ...).
 */
export interface Driver {
  /** The peer's address. */
  readonly peerAddr: ConnAddr;
  /** What the TLS handshake settled (it is over before the transport is made), or `null`. */
  readonly tls: TlsInfo | null;
  /**
   * Called once by the transport's constructor. The driver does the
   * per-connection socket setup here; no callback of the protocol has run.
   */
  attach(transport: SocketTransport): void;
  /** `connectionMade` has returned: start reading (as the transport wants) and writing. */
  start(): void;
  /**
   * Reading on (`true`) or off; called whenever reading is paused, resumed
   * or ended, even when that leaves it as it was (a read in hand may now be
   * delivered, see {@linkcode SocketTransport.holdsReads}).
   */
  setReading(on: boolean): void;
  /**
   * Sends what the socket takes of `data` now, without waiting; returns how
   * many bytes that was (0 when it would block, or when this driver's
   * sends are always awaited).
   *
   * @throws {Error} when the socket failed.
   */
  trySend(data: Uint8Array): number;
  /**
   * The transport's write queue has bytes: send them as the socket takes
   * them, reporting each send with {@linkcode SocketTransport.sent}.
   */
  startWriting(): void;
  /**
   * Sends FIN (half-close).
   *
   * @throws {Error} when the socket failed.
   */
  shutdownWrite(): void;
  /**
   * Resolves once no read is in flight. At once for a driver that reads
   * only when the socket is ready (epoll); a Deno conn's pending read may
   * hold bytes taken from the kernel that nobody has seen yet, and closing
   * under it would drop them, so it is given a moment to settle (its data
   * is then delivered) before the close may cancel it.
   */
  settleReads(): Promise<void>;
  /** Releases the socket: stops watching it and closes it. Called once, when the connection is lost. */
  close(): void;
  /**
   * Makes the coming {@linkcode Driver.close} send a TCP reset (RST)
   * instead of FIN: SO_LINGER {on, 0}. Returns `false` when it cannot (no
   * FFI, no descriptor); the close then sends FIN. Optional: a driver
   * without it always closes with FIN.
   */
  lingerZero?(): boolean;
  /** The local address, or `null` once it cannot be read. */
  localAddr(): ConnAddr | null;
  /**
   * The socket's options read back from the kernel.
   *
   * @throws {Error} when they cannot be read (no FFI).
   */
  socketOptions(): SocketOptionValues;
}

/**
 * What a server that takes the PROXY protocol asks of each transport: the
 * header must come first, whole, within `timeout` milliseconds.
 */
export interface ProxyHeaderHooks {
  /** Milliseconds from the start for the whole header to arrive. */
  timeout: number;
  /** The header was missing, invalid or late: the connection is closed unanswered. */
  refused(transport: SocketTransport, reason: string): void;
  /** The header says LOCAL: the proxy's own connection, such as a health check. */
  local(transport: SocketTransport): void;
  /** The header was read (PROXY or LOCAL): the connection is served from now on. */
  accepted(transport: SocketTransport): void;
}

/** What a server asks of each transport it runs. */
export interface TransportHooks {
  /** Set when every connection begins with a PROXY protocol header. */
  proxy?: ProxyHeaderHooks;
  /** Runs once the connection is closed and `connectionLost` has returned. */
  onClosed?: (transport: SocketTransport) => void;
  /** The server's idle clock, when it closes quiet connections. */
  idle?: IdleClock;
  /** The server's budget for buffered bytes. */
  budget?: BufferBudget;
}

/**
 * How long a shutdown lets a connection that has sent nothing yet send its
 * first bytes (see `SocketTransport.closeAfterLastRead`), in milliseconds.
 */
const FIRST_BYTES_WAIT = 200;

/** Why reading is paused; reading runs when none is set. */
const PAUSED_BY_PROTOCOL = 1;
const PAUSED_BY_BUDGET = 2;

/**
 * A {@linkcode Transport} over one connected socket; see the module
 * documentation. Servers and clients make these; protocols only see the
 * {@linkcode Transport} interface.
 */
export class SocketTransport implements Transport, IdleTracked, BudgetHolder {
  /** The socket's I/O. */
  readonly driver: Driver;
  /** The protocol this connection runs. */
  readonly protocol: Protocol;
  /**
   * The protocol again when it lends its own buffers to read into (asyncio's
   * BufferedProtocol); `null` while a PROXY header is read.
   */
  bufferedProtocol: BufferedProtocol | null;
  /** What the socket has not taken yet; drivers send from it. */
  readonly queue: WriteQueue = new WriteQueue();
  /** Whether debug lines are logged (checked once, not per read). */
  readonly debug: boolean;
  /** The idle clock's tick at the last read or write (see `_idle.ts`). */
  lastActive = 0;
  /** Bytes read from the socket so far. */
  bytesReceived = 0;
  /** Bytes the socket has taken so far. */
  bytesSent = 0;
  // Read on every read or write, so declared together here, at the front of the object: V8
  // lays fields out in this order, and with many connections each cache line of a transport
  // that a request touches is a miss (measured with `perf` at 1,000 connections).
  #closing = false;
  #eofWritten = false;
  /** What the driver was last told: reading on or off. */
  #reading = false;
  /** Reads the PROXY header; `null` once it came (or when none is expected). */
  #header: ProxyHeaderReader | null = null;
  /** Ends a shutdown's wait for the first bytes of a connection (see `closeAfterLastRead`). */
  #firstBytes: (() => void) | null = null;
  readonly #idle: IdleClock | null;
  readonly #budget: BufferBudget | null;
  /** Bytes this connection holds against the budget. */
  held = 0;
  readonly #onClosed: ((transport: SocketTransport) => void) | undefined;
  readonly #info: boolean;
  #peer = "";
  /** The client: the socket's peer, or the source a PROXY header named. */
  #peerAddr: ConnAddr;

  // PROXY protocol header, when one must come first.
  #proxy: ProxyHeaderHooks | null;
  #headerTimer: ReturnType<typeof setTimeout> | undefined;
  #proxyHeader: ProxyHeader | null = null;
  /** Data that followed the header, kept while `connectionMade` left reading paused. */
  #heldRest: Uint8Array | null = null;
  /** `connectionMade` was called: the protocol hears of the end. */
  #made = false;

  // Write side.
  #high: number;
  #low: number;
  #writingPaused = false;
  #eofSent = false;

  // Read side.
  #paused = 0;
  /** Set by a server shutting down: deliver what a read in flight brings, read no more. */
  #lastRead = false;
  #eofReceived = false;
  /** `start()` was called: the driver is told of changes from then on. */
  #started = false;

  // Life cycle.
  #closeReason = "";
  /** The error that broke the connection, if one did. */
  #failure: Error | undefined;
  #lost = false;
  /** Made when first asked for: most connections never are, and 10,000 idle ones add up. */
  #closed: PromiseWithResolvers<void> | null = null;
  /** `connectionLost` has returned. */
  #done = false;

  /**
   * Makes the transport that serves `protocol` over `driver`'s socket;
   * nothing happens until {@linkcode SocketTransport.start}.
   */
  constructor(
    driver: Driver,
    protocol: Protocol,
    options: TransportOptions,
    hooks: TransportHooks = {},
  ) {
    this.driver = driver;
    this.protocol = protocol;
    this.#peerAddr = driver.peerAddr;
    this.#proxy = hooks.proxy ?? null;
    if (this.#proxy !== null) this.#header = new ProxyHeaderReader();
    this.bufferedProtocol = this.#header === null ? asBufferedProtocol(protocol) : null;
    const marks = resolveWaterMarks(options.highWaterMark, options.lowWaterMark);
    this.#high = marks.high;
    this.#low = marks.low;
    this.#onClosed = hooks.onClosed;
    this.#idle = hooks.idle ?? null;
    this.#budget = hooks.budget ?? null;
    this.lastActive = this.#idle?.tick ?? 0;
    this.debug = tcpLogger.isEnabledFor("debug");
    this.#info = tcpLogger.isEnabledFor("info");
    driver.attach(this);
  }

  get closed(): Promise<void> {
    if (this.#closed === null) {
      this.#closed = Promise.withResolvers<void>();
      if (this.#done) this.#closed.resolve();
    }
    return this.#closed.promise;
  }

  /** The client's address as `host:port`, for log lines and errors. */
  get peer(): string {
    return this.#peer ||= formatAddress(this.#peerAddr);
  }

  /** `true` once the connection is closed (the driver has released the socket). */
  get lost(): boolean {
    return this.#lost;
  }

  /**
   * Calls `connectionMade` and starts the I/O; where a PROXY header must
   * come first, starts reading it, and `connectionMade` waits for it.
   */
  start(): void {
    if (this.#header === null) return this.#makeConnection();
    const { timeout } = this.#proxy!;
    this.#headerTimer = setTimeout(
      () => this.#refuseHeader(`no complete PROXY header within ${timeout} ms`),
      timeout,
    );
    this.#startDriver();
  }

  #makeConnection(): void {
    this.#made = true;
    if (this.#proxyHeader?.command === "local") {
      // The proxy's own connection, such as a load balancer's health check: several a
      // second, summed up by the server rather than logged one by one at info.
      this.#proxy!.local(this);
      if (this.debug) {
        tcpLogger.debug("Connection made with {peer}: a PROXY LOCAL header (a health check?)", {
          peer: this.peer,
        });
      }
    } else if (this.#info) {
      if (this.#proxyHeader === null) {
        tcpLogger.info("Connection made with {peer}", { peer: this.peer });
      } else {
        tcpLogger.info("Connection made with {peer} through {proxy}", {
          peer: this.peer,
          proxy: formatAddress(this.driver.peerAddr),
        });
      }
    }
    let made: unknown;
    try {
      made = this.protocol.connectionMade?.(this);
    } catch (error) {
      return this.fail(error, "connectionMade");
    }
    // An async connectionMade (a proxy that connects upstream first): its rejection fails the
    // connection as a throw would, instead of going unhandled and ending the program.
    if (made instanceof Promise) made.catch((error) => this.fail(error, "connectionMade"));
    if (this.#lost || this.#started) return;
    this.#startDriver();
  }

  #startDriver(): void {
    this.#started = true;
    this.#reading = this.#wantsRead();
    this.driver.start();
  }

  /** Whether the driver should be reading now (what it was last told). */
  get reading(): boolean {
    return this.#reading;
  }

  // ---- Transport ---------------------------------------------------------

  write(data: Uint8Array): void {
    if (this.#closing || this.#eofWritten) {
      throw new TransportClosedError(this.#closedReason(), { cause: this.#failure });
    }
    const length = data.length;
    if (length === 0) return;
    const queue = this.queue;
    let sent = 0;
    if (queue.size === 0) {
      // Nothing queued: the socket most likely takes it now.
      try {
        sent = this.driver.trySend(data);
      } catch (error) {
        return this.fail(error);
      }
      if (sent > 0) this.#countSent(sent);
      if (sent === length) return;
    }
    // The caller may reuse `data` once we return: keep a copy of what must wait.
    const wasEmpty = queue.size === 0;
    queue.append(data, sent);
    this.#budget?.charge(this, length - sent);
    if (wasEmpty) this.driver.startWriting();
    if (!this.#writingPaused && queue.size > this.#high) {
      this.#writingPaused = true;
      this.#callback("pauseWriting");
    }
  }

  writeEof(): void {
    if (this.#closing || this.#eofWritten) return;
    this.#eofWritten = true;
    if (this.queue.size === 0) this.#sendEof();
  }

  canWriteEof(): boolean {
    return true;
  }

  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#closeReason = "close() was called";
    this.#updateReading();
    if (this.queue.size === 0) this.#connectionLost(undefined);
  }

  abort(): void {
    if (this.#lost) return;
    this.#closeReason ||= "abort() was called";
    this.#connectionLost(undefined);
  }

  isClosing(): boolean {
    return this.#closing;
  }

  /**
   * Closes as {@linkcode SocketTransport.close} does (stop reading, send
   * what is queued), but ends with a TCP reset (RST) instead of FIN, so the
   * peer sees ECONNRESET; what the kernel has not sent yet when the socket
   * closes is dropped with the reset. Returns `false` when the driver cannot
   * reset (see {@linkcode Driver.lingerZero}): the connection then closes with FIN.
   */
  reset(): boolean {
    if (this.#closing) return false;
    const reset = this.driver.lingerZero?.() ?? false;
    this.close();
    this.#closeReason = "the connection was reset on purpose";
    return reset;
  }

  pauseReading(): void {
    if (this.#closing || (this.#paused & PAUSED_BY_PROTOCOL) !== 0) return;
    this.#paused |= PAUSED_BY_PROTOCOL;
    this.#updateReading();
  }

  resumeReading(): void {
    if ((this.#paused & PAUSED_BY_PROTOCOL) === 0) return;
    this.#paused &= ~PAUSED_BY_PROTOCOL;
    this.#updateReading();
  }

  isReading(): boolean {
    return !this.#closing && this.#paused === 0 && !this.#eofReceived;
  }

  getWriteBufferSize(): number {
    return this.queue.size;
  }

  getWriteBufferLimits(): WaterMarks {
    return { high: this.#high, low: this.#low };
  }

  setWriteBufferLimits(limits: Partial<WaterMarks> = {}): void {
    const { high, low } = limits;
    const marks = validateWaterMarks(high, low, "high water mark", "low water mark");
    this.#high = marks.high;
    this.#low = marks.low;
    if (this.#lost) return;
    const size = this.queue.size;
    if (!this.#writingPaused && size > this.#high) {
      this.#writingPaused = true;
      this.#callback("pauseWriting");
    } else if (this.#writingPaused && size <= this.#low) {
      this.#writingPaused = false;
      this.#callback("resumeWriting");
    }
  }

  getExtraInfo<K extends ExtraInfoName>(name: K): ExtraInfo[K] {
    switch (name) {
      case "peername":
        return this.#peerAddr as ExtraInfo[K];
      case "proxyHeader":
        return this.#proxyHeader as ExtraInfo[K];
      case "proxyPeername":
        return (this.#proxyHeader === null ? null : this.driver.peerAddr) as ExtraInfo[K];
      case "sockname": {
        const local = this.driver.localAddr();
        if (local === null) throw this.#closedError("the local address");
        return local as ExtraInfo[K];
      }
      case "socketOptions":
        if (this.#lost) throw this.#closedError("the socket options");
        return this.driver.socketOptions() as ExtraInfo[K];
      case "tls":
        return this.driver.tls as ExtraInfo[K];
      default:
        throw new TypeError(
          `Cannot read extra info ${JSON.stringify(name)}: it is an unknown name; use ` +
            `"peername", "sockname", "socketOptions", "tls", "proxyHeader" or "proxyPeername"`,
        );
    }
  }

  /** Why `write` refuses, naming the peer: built only when it throws. */
  #closedReason(): string {
    const reason = this.#closeReason || "writeEof() was called";
    const where = `the connection with ${this.peer}`;
    if (reason === "close() was called" || reason === "writeEof() was called") {
      return `${reason} on ${where}; write before calling ${reason.slice(0, reason.indexOf(" "))}`;
    }
    if (reason === "abort() was called") return `${reason} on ${where}`;
    // "the connection failed (...)", "the connection is closed".
    return where + reason.slice("the connection".length);
  }

  #closedError(what: string): Error {
    return new Deno.errors.BadResource(
      `Cannot read ${what} of the connection with ${this.peer}: it is closed`,
    );
  }

  // ---- What servers ask --------------------------------------------------

  /**
   * A server's graceful shutdown: read no more, deliver (and so answer)
   * what a read already in flight brings, then close: send what is
   * buffered, then close the socket. A protocol of this module finishes
   * first what it holds, and closes itself (see `_last_read.ts`). Resolves
   * once the close has begun, or has been left to the protocol.
   */
  async closeAfterLastRead(): Promise<void> {
    if (this.bytesReceived === 0 && !this.#closing && !this.#lost) {
      // Nothing read yet: most likely just accepted, handed over by a load balancer as the
      // server stopped, its first bytes (a PROXY header, a request) on their way. Read on a
      // moment for them, and answer them, rather than close it unanswered.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => this.#firstBytes?.(), FIRST_BYTES_WAIT);
        this.#firstBytes = () => {
          this.#firstBytes = null;
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.#lastRead = true;
    this.#updateReading();
    if (this.#lost) return;
    // After the end of input nothing is left to read (and a protocol lending its buffer, as
    // the stream API does, refuses to lend one after it).
    if (!this.#eofReceived) await this.driver.settleReads();
    if (this.#lost || this.#closing) return;
    const finish = (this.protocol as Partial<FinishesOnLastRead>)[lastRead];
    if (finish !== undefined) {
      // Told already, by the peer's end of input: it closes once done.
      if (this.#eofReceived) return;
      let closesItself: boolean;
      try {
        closesItself = finish.call(this.protocol);
      } catch (error) {
        return this.fail(error, "lastRead");
      }
      if (closesItself || this.#closing) return;
    }
    this.close();
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

  /**
   * Counts `delta` bytes that the protocol holds for this connection (a
   * stream reader's unread bytes, an `until` echo's kept ones) against the
   * server's budget. See {@linkcode chargeBuffered}.
   */
  charge(delta: number): void {
    if (!this.#lost && this.#budget !== null) this.#budget.charge(this, delta);
  }

  /** The budget ran out: stop reading until it has room (see `budget.ts`). */
  pauseForBudget(): void {
    this.#paused |= PAUSED_BY_BUDGET;
    this.#updateReading();
    if (this.debug) {
      tcpLogger.debug("Paused reading from {peer}: the server's buffer budget is spent", {
        peer: this.peer,
      });
    }
  }

  /**
   * The most bytes the next read should take: `max`, or less while the
   * server's budget is spent (see `budget.ts`).
   */
  readLength(max: number): number {
    return this.#budget !== null && this.#budget.spent ? Math.min(max, SPENT_BUDGET_READ) : max;
  }

  /** The budget has room again. */
  resumeForBudget(): void {
    this.#paused &= ~PAUSED_BY_BUDGET;
    this.#updateReading();
  }

  // ---- Driver side: what the socket did ----------------------------------

  /**
   * Reading is paused, by the protocol or by the budget: a driver's last
   * reads at a shutdown (see `settleReads`) take nothing more then.
   */
  get readingPaused(): boolean {
    return this.#paused !== 0;
  }

  /**
   * Whether a read that completed now must wait before it is delivered:
   * reading is paused (by the protocol or the budget), and the connection
   * is neither closing nor shutting down (then the bytes it already took in
   * are delivered, and answered, rather than dropped). Only a driver whose
   * reads are awaited ever asks.
   */
  get holdsReads(): boolean {
    return this.#paused !== 0 && !this.#closing && !this.#lastRead;
  }

  /**
   * A read brought `data` (a view of the driver's buffer, valid during the
   * call). Counted even when a close makes us drop it.
   */
  received(data: Uint8Array): void {
    this.bytesReceived += data.length;
    if (this.#closing) return;
    if (this.#header !== null) this.#receiveHeader(data);
    else this.#deliver(data);
    if (this.#firstBytes !== null) this.#firstBytes(); // a shutdown waited for them
  }

  #deliver(data: Uint8Array): void {
    if (this.#idle !== null) this.lastActive = this.#idle.tick;
    if (this.debug) this.#logReceived(data.length);
    const buffered = this.bufferedProtocol;
    if (buffered !== null) {
      try {
        copyIntoProtocol(buffered, data);
      } catch (error) {
        this.fail(error, "getBuffer/bufferUpdated");
      }
      return;
    }
    try {
      this.protocol.dataReceived?.(data);
    } catch (error) {
      this.fail(error, "dataReceived");
    }
  }

  /**
   * The buffer the next read of a {@linkcode BufferedProtocol} goes into
   * (its `getBuffer`), or `null` after the connection failed because
   * `getBuffer` threw or returned nothing usable.
   */
  receiveBuffer(sizeHint: number): Uint8Array | null {
    try {
      return receiveBuffer(this.bufferedProtocol!, sizeHint);
    } catch (error) {
      this.fail(error, "getBuffer");
      return null;
    }
  }

  /** A read of `n` bytes went straight into the buffer `receiveBuffer` returned. */
  receivedInto(n: number): void {
    this.bytesReceived += n;
    if (this.#closing) return;
    this.#firstBytes?.();
    if (this.#idle !== null) this.lastActive = this.#idle.tick;
    if (this.debug) this.#logReceived(n);
    try {
      this.bufferedProtocol!.bufferUpdated(n);
    } catch (error) {
      this.fail(error, "bufferUpdated");
    }
  }

  #logReceived(bytes: number): void {
    tcpLogger.debug("Received {bytes} bytes from {peer}", { bytes, peer: this.peer });
  }

  /**
   * Bytes while the PROXY header is awaited: held (against the budget) until
   * it is whole; then the connection is made, and what followed the header
   * in the same read is delivered as data. A header that cannot be one
   * closes the connection unanswered.
   */
  #receiveHeader(data: Uint8Array): void {
    if (this.#idle !== null) this.lastActive = this.#idle.tick;
    const reader = this.#header!;
    const held = reader.held;
    const result = reader.push(data);
    this.charge(reader.held - held);
    if (result.status === "incomplete") return;
    if (result.status === "invalid") return this.#refuseHeader(result.reason);
    this.#header = null;
    clearTimeout(this.#headerTimer);
    const { header } = result;
    this.#proxyHeader = header;
    // The header is the proxy's, not the client's data: bytes in count what follows it.
    this.bytesReceived -= result.length;
    const source = header.source;
    if (header.command === "proxy" && source !== null && "hostname" in source) {
      this.#peerAddr = source;
      this.#peer = "";
    }
    if (this.debug) {
      tcpLogger.debug("PROXY v{version} header from {proxy}: {command} {protocol} for {peer}", {
        version: header.version,
        proxy: formatAddress(this.driver.peerAddr),
        command: header.command,
        protocol: header.protocol,
        peer: this.peer,
      });
    }
    this.bufferedProtocol = asBufferedProtocol(this.protocol);
    this.#proxy!.accepted(this);
    this.#makeConnection();
    const { rest } = result;
    if (rest.length === 0 || this.#closing) return;
    if (this.#paused === 0) return this.#deliver(rest);
    // connectionMade paused reading: the data waits (a copy: `rest` is the driver's) for resumeReading.
    this.#heldRest = rest.slice();
    this.charge(rest.length);
  }

  /** Closes the connection unanswered: its PROXY header was missing, invalid or late. */
  #refuseHeader(reason: string): void {
    if (this.#header === null || this.#lost) return;
    this.#header = null;
    clearTimeout(this.#headerTimer);
    this.#closeReason = `the PROXY header was refused (${reason})`;
    this.#proxy!.refused(this, reason);
    this.abort();
  }

  /** The peer finished sending. */
  endOfInput(): void {
    this.#firstBytes?.();
    if (this.#closing) return;
    if (this.#header !== null) {
      return this.#refuseHeader("the connection ended before a complete PROXY header");
    }
    this.#eofReceived = true;
    this.#updateReading();
    if (this.debug) tcpLogger.debug("End of input from {peer}", { peer: this.peer });
    let keepOpen: boolean | void;
    try {
      keepOpen = this.protocol.eofReceived?.();
    } catch (error) {
      return this.fail(error, "eofReceived");
    }
    if (!keepOpen || this.#eofSent) this.close();
  }

  /**
   * The socket took `n` bytes from the front of the queue. Updates the
   * counters and the water marks; once the queue is empty, a pending
   * half-close or close goes ahead.
   */
  sent(n: number): void {
    const queue = this.queue;
    queue.consume(n);
    this.#budget?.charge(this, -n);
    this.#countSent(n);
    if (this.#writingPaused && queue.size <= this.#low) {
      this.#writingPaused = false;
      this.#callback("resumeWriting");
      if (this.#lost) return;
    }
    if (queue.size > 0) return;
    if (this.#closing) this.#connectionLost(undefined);
    else if (this.#eofWritten && !this.#eofSent) this.#sendEof();
  }

  #countSent(n: number): void {
    this.bytesSent += n;
    if (this.#idle !== null) this.lastActive = this.#idle.tick;
    if (this.debug) tcpLogger.debug("Sent {bytes} bytes to {peer}", { bytes: n, peer: this.peer });
  }

  /**
   * Aborts the connection because of `cause`, which `connectionLost` then
   * receives: a socket error, or a protocol `callback` that threw.
   */
  fail(cause: unknown, callback?: string): void {
    if (this.#lost) return;
    const error = reportFailure(cause, this.peer, callback);
    this.#closeReason ||= `the connection failed (${error.message})`;
    this.#failure ??= error;
    this.#connectionLost(error);
  }

  // ---- Inside ------------------------------------------------------------

  #wantsRead(): boolean {
    return !this.#closing && this.#paused === 0 && !this.#eofReceived && !this.#lastRead;
  }

  /**
   * Tells the driver that reading was paused, resumed, or ended: whether it
   * should read now, and (through `holdsReads`) whether a read it has in
   * hand may be delivered.
   */
  #updateReading(): void {
    if (this.#lost || !this.#started) return;
    if (this.#heldRest !== null && this.#paused === 0 && !this.#closing) {
      const rest = this.#heldRest;
      this.#heldRest = null;
      this.charge(-rest.length);
      this.#deliver(rest);
      if (this.#lost) return;
    }
    this.#reading = this.#wantsRead();
    this.driver.setReading(this.#reading);
  }

  #sendEof(): void {
    try {
      this.driver.shutdownWrite();
    } catch (error) {
      return this.fail(error);
    }
    this.#eofSent = true;
    if (this.#eofReceived) this.close();
  }

  /** Calls an optional flow-control callback, aborting the connection if it throws. */
  #callback(name: "pauseWriting" | "resumeWriting"): void {
    try {
      this.protocol[name]?.();
    } catch (error) {
      this.fail(error, name);
    }
  }

  /**
   * The end: drops what is queued, has the driver release the socket, and
   * calls `connectionLost` on a later turn, as asyncio does, so a close
   * made inside a callback never re-enters the protocol.
   */
  #connectionLost(error: Error | undefined): void {
    if (this.#lost) return;
    this.#lost = true;
    this.#closing = true;
    this.#reading = false;
    this.#writingPaused = false; // no resumeWriting after connectionLost
    this.#closeReason ||= "the connection is closed";
    if (this.#header !== null) {
      this.#header = null;
      clearTimeout(this.#headerTimer);
    }
    this.#heldRest = null; // its charge goes with the budget's release below
    this.#firstBytes?.();
    this.queue.clear();
    this.#budget?.release(this);
    queueMicrotask(() => this.#deliverLost(error));
    this.driver.close();
  }

  #deliverLost(error: Error | undefined): void {
    // A connection refused before its PROXY header came never reached the protocol.
    if (this.#made) {
      if (this.#info && this.#proxyHeader?.command !== "local") {
        tcpLogger.info("Connection lost with {peer}", { peer: this.peer });
      }
      try {
        this.protocol.connectionLost?.(error);
      } catch (thrown) {
        tcpLogger.error("Protocol connectionLost threw for {peer}: {error}", {
          peer: this.peer,
          error: thrown,
        });
      }
    }
    this.#onClosed?.(this);
    this.#done = true;
    this.#closed?.resolve();
  }
}

/**
 * Counts `delta` bytes a protocol holds on behalf of its connection (taken
 * in: positive; let go of: negative) against the buffer budget of the
 * server that runs it. Nothing for a transport without a budget (a client)
 * or one this module did not make.
 *
 * @example A protocol that keeps what it reads until end of input
 * ```ts ignore
 * dataReceived(data: Uint8Array) {
 *   this.chunks.push(data.slice());
 *   chargeBuffered(this.transport, data.length);
 * }
 * ```
 */
export function chargeBuffered(transport: Transport, delta: number): void {
  if (transport instanceof SocketTransport) transport.charge(delta);
}

/**
 * Closes `transport` with a TCP reset once what it has queued is sent (see
 * {@linkcode SocketTransport.reset}). Returns whether a reset could be
 * arranged; `false` also for a transport this module did not make, which
 * is then closed as `close()` does.
 */
export function resetConnection(transport: Transport): boolean {
  if (transport instanceof SocketTransport) return transport.reset();
  transport.close();
  return false;
}

/**
 * Logs why the connection with `peer` is being aborted: at error level when
 * the protocol's `callback` threw, at debug level when the peer reset or
 * vanished, else as a warning. Returns `cause` as an `Error`.
 */
function reportFailure(cause: unknown, peer: string, callback?: string): Error {
  const error = cause instanceof Error ? cause : new Error(String(cause));
  if (callback) {
    tcpLogger.error("Protocol {callback} threw for {peer}; closing that connection: {error}", {
      callback,
      peer,
      error,
    });
  } else if (isPeerFault(error)) {
    tcpLogger.debug("Connection with {peer} failed: {error}", { peer, error });
  } else {
    tcpLogger.warning("Connection with {peer} failed: {error}", { peer, error });
  }
  return error;
}

/** `protocol` when it is a {@linkcode BufferedProtocol} (it has both methods), else `null`. */
function asBufferedProtocol(protocol: Protocol): BufferedProtocol | null {
  const { getBuffer, bufferUpdated } = protocol as Partial<BufferedProtocol>;
  return typeof getBuffer === "function" && typeof bufferUpdated === "function"
    ? protocol as BufferedProtocol
    : null;
}

/** Asks `protocol` for the buffer of the next read, and checks it can take one. */
function receiveBuffer(protocol: BufferedProtocol, sizeHint: number): Uint8Array {
  const buffer = protocol.getBuffer(sizeHint);
  if (!(buffer instanceof Uint8Array) || buffer.length === 0) {
    const what = buffer instanceof Uint8Array ? "an empty Uint8Array" : `of type ${typeof buffer}`;
    throw new TypeError(
      `Cannot receive into what getBuffer(${sizeHint}) returned: it is ${what}; ` +
        `return a Uint8Array of at least one byte`,
    );
  }
  return buffer;
}

/**
 * Hands `data`, read into a driver's own buffer, to `protocol` through its
 * buffers: as many `getBuffer`/`bufferUpdated` rounds as it takes.
 */
function copyIntoProtocol(protocol: BufferedProtocol, data: Uint8Array): void {
  const length = data.length;
  for (let offset = 0; offset < length;) {
    const target = receiveBuffer(protocol, length - offset);
    const n = Math.min(target.length, length - offset);
    target.set(n === length ? data : data.subarray(offset, offset + n));
    protocol.bufferUpdated(n);
    offset += n;
  }
}
