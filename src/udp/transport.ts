/**
 * The UDP transport: one receive loop and one send queue per socket.
 *
 * @module
 */

import type {
  DatagramExtraInfo,
  DatagramExtraInfoName,
  DatagramProtocol,
  DatagramTransport,
} from "./protocol.ts";
import {
  checkDatagramSize,
  type DatagramBindOptions,
  type DatagramSocket,
  openDatagramSocket,
} from "./socket.ts";
import { udpLogger } from "./_log.ts";
import { formatAddress } from "../_address.ts";
import { TransportClosedError } from "../errors.ts";
import { validateWaterMarks } from "../core/water_marks.ts";
import { type FinishesOnLastRead, lastRead } from "../core/_last_read.ts";
import { readSocketOptions, readSocketOptionsOf } from "../sockopt/read_back.ts";
import { type DatagramSink, EpollDatagramSocket } from "./_epoll_socket.ts";
import { countDropped, type CountsTooLarge, countTooLarge, type DropReason } from "./_drops.ts";
import { sendInPlace, type SendsInPlace } from "./_send_in_place.ts";
import { checkFamily } from "./socket.ts";
import { type LinuxLibc, loadLibc } from "../libc/_libc.ts";

/**
 * Send-queue water marks of a UDP transport.
 *
 * @example
 * ```ts
 * import type { DatagramTransportOptions } from "@x/echo/udp";
 *
 * const options: DatagramTransportOptions = { highWaterMark: 1 << 20 };
 * ```
 */
export interface DatagramTransportOptions {
  /**
   * Queued bytes past which `pauseWriting` is called and no more datagrams
   * are received until the queue drains (the kernel holds or drops them, as
   * UDP does). Default 65536.
   */
  highWaterMark?: number;
  /** Queued bytes at which `resumeWriting` is called. Default a quarter of the high mark. */
  lowWaterMark?: number;
}

/** Checks the water marks up front, naming a bad value. */
export function validateDatagramTransportOptions(options: DatagramTransportOptions): void {
  validateWaterMarks(options.highWaterMark, options.lowWaterMark);
}

/** How a server or client shapes its transport. */
export interface UdpTransportSetup {
  /** A client's default remote: `send` without an address goes there. */
  remote?: Deno.NetAddr;
  /**
   * Decides, per datagram, whether the protocol sees it (the reflection
   * guard, a client's filter on its remote); it counts and logs its own drops.
   */
  accept?: (from: Deno.NetAddr) => boolean;
  /** Runs once the socket is closed and `connectionLost` has returned. */
  onClosed?: () => void;
}

/**
 * Binds a socket and makes its protocol; if the factory throws, the socket
 * is closed (and its port free again) before the error is passed on.
 */
export async function openEndpoint<P extends DatagramProtocol>(
  bind: DatagramBindOptions,
  protocolFactory: () => P,
): Promise<[DatagramSocket, P]> {
  const socket = await openDatagramSocket(bind);
  try {
    return [socket, protocolFactory()];
  } catch (error) {
    socket.close();
    await socket.closed;
    throw error;
  }
}

/** After this many receive errors in a row the socket is taken as broken and closed. */
const MAX_RECEIVE_FAILURES = 64;

/**
 * A {@linkcode DatagramTransport} over a bound {@linkcode DatagramSocket}.
 * Servers and clients make these; user code sees the interface only.
 */
export class UdpTransport implements DatagramTransport, CountsTooLarge, SendsInPlace {
  readonly #socket: DatagramSocket;
  readonly #protocol: DatagramProtocol;
  readonly #remote: Deno.NetAddr | undefined;
  readonly #accept: ((from: Deno.NetAddr) => boolean) | undefined;
  readonly #onClosed: (() => void) | undefined;
  readonly #debug: boolean;
  /**
   * The socket when it pushes datagrams to the transport (the epoll backend):
   * it then receives, batches and queues itself, and the transport's own
   * receive loop and send queue stay unused.
   */
  readonly #pushing: EpollDatagramSocket | null;
  readonly #sink: DatagramSink;

  // Send side: two parallel arrays, so queuing a datagram allocates nothing.
  readonly #queued: Uint8Array[] = [];
  readonly #targets: Deno.NetAddr[] = [];
  #head = 0;
  #buffered = 0;
  #flushing: Promise<void> | null = null;
  readonly #high: number;
  readonly #low: number;
  #writingPaused = false;

  // Counters.
  #received = 0;
  #sent = 0;
  #sendErrors = 0;
  #tooLarge = 0;
  readonly #dropped: Record<DropReason, number> = { injected: 0, overflow: 0, amplification: 0 };

  // Life cycle.
  /** Datagrams are taken in: until a graceful stop's `closeAfterLastRead`, or the close. */
  #receiving = true;
  #closing = false;
  #closeReason = "";
  #lost = false;
  readonly #closed: PromiseWithResolvers<void> = Promise.withResolvers<void>();

  /** Wraps `socket` for `protocol`; nothing happens until {@linkcode UdpTransport.start}. */
  constructor(
    socket: DatagramSocket,
    protocol: DatagramProtocol,
    options: DatagramTransportOptions,
    setup: UdpTransportSetup = {},
  ) {
    this.#socket = socket;
    this.#protocol = protocol;
    this.#remote = setup.remote;
    this.#accept = setup.accept;
    this.#onClosed = setup.onClosed;
    const marks = validateWaterMarks(options.highWaterMark, options.lowWaterMark);
    this.#high = marks.high;
    this.#low = marks.low;
    this.#debug = udpLogger.isEnabledFor("debug");
    this.#pushing = socket instanceof EpollDatagramSocket ? socket : null;
    this.#sink = {
      datagramReceived: (data, from) => this.#deliver(data, from),
      errorReceived: (error, sending) => {
        if (this.#lost) return;
        if (sending) this.#sendErrors++;
        this.#errorReceived(error);
      },
      writingPaused: () => {
        this.#writingPaused = true;
        this.#callback("pauseWriting");
      },
      writingResumed: () => {
        this.#writingPaused = false;
        this.#callback("resumeWriting");
      },
      drained: () => {
        if (this.#closing) this.#connectionLost(undefined);
      },
      failed: (error) => this.#fail(error),
    };
    // Sends may come from connectionMade on: they need the sink before the socket reads.
    this.#pushing?.attach(this.#sink, this.#high, this.#low);
  }

  get closed(): Promise<void> {
    return this.#closed.promise;
  }

  /** Datagrams received, including those the `accept` filter dropped. */
  get received(): number {
    return this.#received;
  }

  /** Datagrams the kernel took. */
  get sent(): number {
    return this.#pushing?.sent ?? this.#sent;
  }

  /** Datagrams the kernel refused (each reported to `errorReceived`). */
  get sendErrors(): number {
    return this.#sendErrors;
  }

  /** Answers the protocol did not send for their size (see `_drops.ts`). */
  get tooLarge(): number {
    return this.#tooLarge;
  }

  [countTooLarge](): void {
    this.#tooLarge++;
  }

  /** Datagrams the protocol left unanswered and told of, by reason (see `_drops.ts`). */
  get dropped(): Readonly<Record<DropReason, number>> {
    return this.#dropped;
  }

  [countDropped](reason: DropReason): void {
    this.#dropped[reason]++;
  }

  /** Calls `connectionMade` and starts the receive loop. */
  start(): void {
    let made: unknown;
    try {
      made = this.#protocol.connectionMade?.(this);
    } catch (error) {
      this.#fail(error, "connectionMade");
      return;
    }
    // An async connectionMade: its rejection fails the transport as a throw would.
    if (made instanceof Promise) made.catch((error) => this.#fail(error, "connectionMade"));
    if (this.#pushing !== null) {
      // Closed from connectionMade with datagrams queued: the socket still drains them.
      if (!this.#closing || this.#pushing.pending) this.#pushing.register();
      return;
    }
    if (!this.#closing) this.#receiveLoop();
  }

  // ---- DatagramTransport -------------------------------------------------

  send(data: Uint8Array, to?: Deno.NetAddr): void {
    this.#send(data, to, false);
  }

  /** `send`, without a copy for the transport's own protocol (see `_send_in_place.ts`). */
  [sendInPlace](protocol: DatagramProtocol, data: Uint8Array, to: Deno.NetAddr): void {
    this.#send(data, to, protocol === this.#protocol);
  }

  #send(data: Uint8Array, to: Deno.NetAddr | undefined, inPlace: boolean): void {
    if (this.#closing) throw new TransportClosedError(this.#closedReason());
    if (!(data instanceof Uint8Array)) {
      throw new TypeError(`Cannot send a datagram of type ${typeof data}: it must be a Uint8Array`);
    }
    const target = this.#target(to);
    checkDatagramSize(data, target);
    const pushing = this.#pushing;
    if (pushing !== null) {
      // Sent now, gathered into the batch's sendmmsg, or copied into the socket's queue.
      try {
        checkFamily(pushing.addr, target);
      } catch (error) {
        // As on the other backends, where it fails once queued: reported, and the socket goes on.
        this.#sendErrors++;
        return this.#errorReceived(error);
      }
      return pushing.sendNow(data, target, inPlace);
    }
    // Sends are awaited, and the caller may reuse `data` (the receive buffer, say) at once.
    this.#queued.push(data.slice());
    this.#targets.push(target);
    this.#buffered += data.length;
    if (this.#flushing === null) this.#flushing = this.#flush();
    if (!this.#writingPaused && this.#buffered > this.#high) {
      this.#writingPaused = true;
      this.#callback("pauseWriting");
    }
  }

  /** An address for an error message to show, of the socket's family. */
  #exampleAddress(): string {
    const hostname = this.#socket.addr.hostname.includes(":") ? "::1" : "127.0.0.1";
    return `{ transport: "udp", hostname: "${hostname}", port: 8888 }`;
  }

  /** Where a datagram goes: `to`, or the default remote, checked as asyncio's `sendto` does. */
  #target(to: Deno.NetAddr | undefined): Deno.NetAddr {
    const remote = this.#remote;
    if (to === undefined) {
      if (remote) return remote;
      throw new TypeError(
        "Cannot send a datagram without an address: this socket has no default remote; " +
          `pass one: send(data, ${this.#exampleAddress()})`,
      );
    }
    if (
      to === null || typeof to !== "object" || typeof to.hostname !== "string" ||
      !Number.isInteger(to.port) || to.port < 1 || to.port > 65535
    ) {
      throw new TypeError(
        `Cannot send a datagram to ${JSON.stringify(to)}: the address must be like ` +
          `${this.#exampleAddress()} with a port from 1 to 65535`,
      );
    }
    if (remote && (to.port !== remote.port || to.hostname !== remote.hostname)) {
      throw new TypeError(
        `Cannot send a datagram to ${formatAddress(to)}: this socket sends to its default ` +
          `remote ${formatAddress(remote)} only; omit the address, or open another socket`,
      );
    }
    return to;
  }

  /** Why `send` refuses, naming the socket: built only when it throws. */
  #closedReason(): string {
    const reason = this.#closeReason;
    const where = `udp ${formatAddress(this.#socket.addr)}`;
    if (reason === "close() was called") {
      return `${reason} on ${where}; send before calling close()`;
    }
    if (reason === "abort() was called") return `${reason} on ${where}`;
    // "the socket failed (...)", "the socket is closed".
    return `the socket on ${where}` + reason.slice("the socket".length);
  }

  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#closeReason = "close() was called";
    this.#pushing?.stopReading();
    const pending = this.#pushing !== null ? this.#pushing.pending : this.#flushing !== null;
    if (!pending) this.#connectionLost(undefined);
  }

  /**
   * A server's graceful shutdown: no more datagrams are taken in. A
   * protocol of this module then sends what it holds back and closes the
   * transport itself (see `core/_last_read.ts`); any other is closed now,
   * what is queued still going out.
   */
  closeAfterLastRead(): void {
    if (this.#closing) return;
    this.#receiving = false;
    this.#pushing?.stopReading();
    const finish = (this.#protocol as Partial<FinishesOnLastRead>)[lastRead];
    if (finish !== undefined) {
      let closesItself: boolean;
      try {
        closesItself = finish.call(this.#protocol);
      } catch (error) {
        return this.#fail(error, "lastRead");
      }
      if (closesItself || this.#closing) return;
    }
    this.close();
  }

  abort(): void {
    if (this.#lost) return;
    this.#closeReason ||= "abort() was called";
    this.#connectionLost(undefined);
  }

  isClosing(): boolean {
    return this.#closing;
  }

  getWriteBufferSize(): number {
    return this.#pushing?.queuedBytes ?? this.#buffered;
  }

  getExtraInfo<K extends DatagramExtraInfoName>(name: K): DatagramExtraInfo[K] {
    switch (name) {
      case "sockname":
        return this.#socket.addr as DatagramExtraInfo[K];
      case "peername":
        return this.#remote as DatagramExtraInfo[K];
      case "socketOptions":
        if (this.#lost) {
          throw new Deno.errors.BadResource(
            `Cannot read the socket options of udp ${formatAddress(this.#socket.addr)}: ` +
              `it is closed`,
          );
        }
        // A socket this module opened is known by its descriptor, never looked up by address.
        return (this.#pushing !== null
          ? readSocketOptions(loadLibc() as LinuxLibc, this.#pushing.fd, "udp")
          : readSocketOptionsOf({
            transport: "udp",
            local: this.#socket.addr,
          })) as DatagramExtraInfo[K];
      default:
        throw new TypeError(
          `Cannot read extra info ${JSON.stringify(name)}: it is an unknown name; ` +
            `use "sockname", "peername" or "socketOptions"`,
        );
    }
  }

  // ---- Receiving ---------------------------------------------------------

  async #receiveLoop(): Promise<void> {
    const socket = this.#socket;
    let failures = 0;
    while (!this.#closing && this.#receiving) {
      // Too much is queued: let the sends go out first.
      while (this.#writingPaused && this.#flushing !== null) {
        await this.#flushing;
      }
      if (this.#closing || !this.#receiving) return;
      let datagram;
      try {
        datagram = await socket.receive();
      } catch (error) {
        if (this.#closing) return;
        if (++failures >= MAX_RECEIVE_FAILURES) return this.#fail(error);
        this.#errorReceived(error);
        continue;
      }
      failures = 0;
      if (this.#closing) return;
      if (datagram === null) {
        // Closed from outside the transport.
        return this.#fail(
          new Deno.errors.BadResource(
            `Cannot receive on udp ${formatAddress(this.#socket.addr)}: the socket was closed`,
          ),
        );
      }
      this.#deliver(datagram[0], datagram[1]);
    }
  }

  /** One datagram received: counted, passed by the guard (or not), handed to the protocol. */
  #deliver(data: Uint8Array, from: Deno.NetAddr): void {
    if (this.#closing || !this.#receiving) return;
    this.#received++;
    const accept = this.#accept;
    if (accept !== undefined && !accept(from)) return;
    if (this.#debug) {
      udpLogger.debug("Received {bytes} bytes from {source}", {
        bytes: data.length,
        source: formatAddress(from),
      });
    }
    try {
      this.#protocol.datagramReceived?.(data, from);
    } catch (error) {
      udpLogger.error("Protocol datagramReceived threw for a datagram from {source}: {error}", {
        source: formatAddress(from),
        error,
      });
    }
  }

  /** Reports a failed send or receive to the protocol; the socket goes on. */
  #errorReceived(cause: unknown): void {
    const error = cause instanceof Error ? cause : new Error(String(cause));
    if (this.#debug) {
      udpLogger.debug("UDP error on {address}: {error}", {
        address: formatAddress(this.#socket.addr),
        error,
      });
    }
    try {
      this.#protocol.errorReceived?.(error);
    } catch (thrown) {
      this.#fail(thrown, "errorReceived");
    }
  }

  // ---- Sending -----------------------------------------------------------

  async #flush(): Promise<void> {
    const socket = this.#socket;
    const queued = this.#queued;
    const targets = this.#targets;
    while (this.#head < queued.length) {
      const data = queued[this.#head];
      try {
        await socket.send(data, targets[this.#head]);
        this.#sent++;
      } catch (error) {
        if (this.#lost) return;
        this.#sendErrors++;
        this.#errorReceived(error);
      }
      if (this.#lost) return;
      this.#buffered -= data.length;
      if (++this.#head === queued.length) {
        queued.length = 0;
        targets.length = 0;
        this.#head = 0;
      }
      if (this.#writingPaused && this.#buffered <= this.#low) {
        this.#writingPaused = false;
        this.#callback("resumeWriting");
        if (this.#lost) return;
      }
    }
    this.#flushing = null;
    if (this.#closing) this.#connectionLost(undefined);
  }

  // ---- Closing -----------------------------------------------------------

  #callback(name: "pauseWriting" | "resumeWriting"): void {
    try {
      this.#protocol[name]?.();
    } catch (error) {
      this.#fail(error, name);
    }
  }

  /** Aborts the transport because of `cause`, which `connectionLost` then receives. */
  #fail(cause: unknown, callback?: string): void {
    if (this.#lost) return;
    const error = cause instanceof Error ? cause : new Error(String(cause));
    const address = formatAddress(this.#socket.addr);
    if (callback) {
      udpLogger.error("Protocol {callback} threw on udp {address}; closing the socket: {error}", {
        callback,
        address,
        error,
      });
    } else {
      udpLogger.error("UDP socket {address} failed: {error}", { address, error });
    }
    this.#closeReason ||= `the socket failed (${error.message})`;
    this.#connectionLost(error);
  }

  #connectionLost(error: Error | undefined): void {
    if (this.#lost) return;
    this.#lost = true;
    this.#closing = true;
    this.#closeReason ||= "the socket is closed";
    this.#queued.length = 0;
    this.#targets.length = 0;
    this.#head = 0;
    this.#buffered = 0;
    this.#flushing = null;
    this.#socket.close();
    // Deliver connectionLost on a later turn, as asyncio does, so a close()
    // made inside a callback never re-enters the protocol; and once the
    // system has released the socket, so its port is free when `closed` resolves.
    this.#socket.closed.then(() => {
      try {
        this.#protocol.connectionLost?.(error);
      } catch (thrown) {
        udpLogger.error("Protocol connectionLost threw on udp {address}: {error}", {
          address: formatAddress(this.#socket.addr),
          error: thrown,
        });
      }
      this.#onClosed?.();
      this.#closed.resolve();
    });
  }
}
