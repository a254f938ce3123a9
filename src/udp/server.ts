/**
 * A UDP server: one {@linkcode DatagramProtocol} on one bound socket, behind
 * the reflection guard, with a handle shaped like the TCP server's.
 *
 * @module
 */

import type { DatagramProtocol } from "./protocol.ts";
import type { DatagramBackend, DatagramSocket } from "./socket.ts";
import {
  type DatagramTransportOptions,
  openEndpoint,
  UdpTransport,
  validateDatagramTransportOptions,
} from "./transport.ts";
import { type DropCounts, type RateLimit, ReflectionGuard, validateRateLimit } from "./guard.ts";
import { udpLogger } from "./_log.ts";
import { formatAddress } from "../_address.ts";
import { checkBoolean, checkInteger } from "../_validate.ts";
import type { UdpSocketOptions } from "../sockopt/socket_options.ts";
import { readSocketOptionsOf, type SocketOptionValues } from "../sockopt/read_back.ts";
import { moreCounters, type WithMoreCounters } from "../_more_counters.ts";

/**
 * The default time {@linkcode UdpServer.shutdown} lets queued datagrams go out: 10 seconds.
 *
 * @example
 * ```ts
 * import { DEFAULT_UDP_SHUTDOWN_TIMEOUT } from "@x/echo/udp";
 * import { serveUdpEcho } from "@x/echo";
 *
 * const server = await serveUdpEcho({ shutdownTimeout: DEFAULT_UDP_SHUTDOWN_TIMEOUT / 10 });
 * await server.shutdown();
 * ```
 */
export const DEFAULT_UDP_SHUTDOWN_TIMEOUT = 10_000;

/**
 * Where a UDP server binds, its socket options and its safety settings.
 *
 * @example
 * ```ts
 * import type { UdpServerOptions } from "@x/echo";
 *
 * const options: UdpServerOptions = {
 *   hostname: "127.0.0.1",
 *   port: 8888,
 *   receiveBufferSize: 1 << 20,
 *   rateLimit: { perSecond: 1000 },
 * };
 * ```
 */
export interface UdpServerOptions extends UdpSocketOptions, DatagramTransportOptions {
  /**
   * The address to bind. Default `"127.0.0.1"`: a UDP echo service reachable
   * from other hosts can be abused for reflection, so exposing it is a choice.
   */
  hostname?: string;
  /** The port to bind; 0 picks a free one (read it from `addr`). Default 0. */
  port?: number;
  /**
   * Drop datagrams from the loop-prone source ports (0, 7, 13, 17, 19, 37) and
   * from this server's own port on this host, before the protocol sees them.
   * Default `true`; turn it off only for a protocol that never answers.
   */
  reflectionGuard?: boolean;
  /** An optional per-source-host rate limit; datagrams past it are dropped. */
  rateLimit?: RateLimit;
  /**
   * Force a backend: `"epoll"` (Linux, with `--allow-ffi`), `"deno"`
   * (`Deno.listenDatagram`, needs `--unstable-net`) or `"node"`
   * (`node:dgram`); by default the first of them available.
   */
  backend?: DatagramBackend;
  /** Aborting this signal shuts the server down, as `shutdown()` does. */
  signal?: AbortSignal;
  /** Milliseconds `shutdown()` lets queued datagrams go out before dropping them. Default 10000. */
  shutdownTimeout?: number;
}

/**
 * What a UDP server has done so far.
 *
 * @example
 * ```ts
 * import type { UdpServerCounters } from "@x/echo/udp";
 *
 * const report = (c: UdpServerCounters) => `${c.received} in, ${c.sent} out`;
 * ```
 */
export interface UdpServerCounters {
  /** Datagrams received, dropped ones included. */
  received: number;
  /** Datagrams sent. */
  sent: number;
  /** Datagrams the kernel refused to send. */
  sendErrors: number;
  /** Datagrams dropped without an answer, in all. */
  dropped: number;
  /** Dropped datagrams by reason. */
  drops: DropCounts;
}

/**
 * A running UDP server, as returned by {@linkcode serveUdp}.
 *
 * @example
 * ```ts
 * import { serveUdp } from "@x/echo";
 *
 * await using server = await serveUdp({ port: 0 }, () => ({}));
 * console.log(`udp on ${server.addr.hostname}:${server.addr.port} (${server.backend})`);
 * ```
 */
export interface UdpServer extends AsyncDisposable {
  /** The bound address, with the real port when 0 was asked for. */
  readonly addr: Deno.NetAddr;
  /** The socket implementation in use. */
  readonly backend: DatagramBackend;
  /** Resolves once the socket is closed and `connectionLost` has returned. */
  readonly finished: Promise<void>;
  /** A snapshot of the counters. */
  readonly counters: UdpServerCounters;
  /**
   * The socket's options read back from the kernel. Needs `--allow-ffi`.
   *
   * @throws {Deno.errors.NotCapable} without `--allow-ffi`.
   */
  getSocketOptions(): SocketOptionValues;
  /**
   * Stops receiving, lets queued datagrams go out, and the echo's answers
   * its `delay` holds back, each when due (for up to `shutdownTimeout` in
   * all), then closes the socket. A second call drops what is still queued.
   */
  shutdown(): Promise<void>;
}

/**
 * Binds a UDP socket on `hostname:port` and runs the protocol
 * `protocolFactory` makes (called once, as asyncio's
 * `create_datagram_endpoint` does) on it, behind the reflection guard.
 *
 * Buffer sizes are set through FFI (`--allow-ffi`) on either backend; the
 * backend in use is logged at debug level.
 *
 * @example A UDP echo protocol on an ephemeral port
 * ```ts
 * import { type DatagramTransport, serveUdp } from "@x/echo";
 *
 * let transport: DatagramTransport;
 * const server = await serveUdp({ port: 0 }, () => ({
 *   connectionMade: (t) => void (transport = t),
 *   datagramReceived: (data, from) => transport.send(data, from),
 * }));
 * await server.shutdown();
 * ```
 *
 * @throws {Deno.errors.AddrInUse} when the port is taken; the message names the address.
 * @throws {RangeError} for an option out of range, before any socket is opened.
 */
export async function serveUdp(
  options: UdpServerOptions,
  protocolFactory: () => DatagramProtocol,
): Promise<UdpServer> {
  const {
    hostname = "127.0.0.1",
    port = 0,
    reflectionGuard = true,
    shutdownTimeout = DEFAULT_UDP_SHUTDOWN_TIMEOUT,
  } = options;
  checkBoolean("reflectionGuard", reflectionGuard);
  checkInteger("shutdownTimeout", shutdownTimeout, 0, 2 ** 31 - 1);
  validateDatagramTransportOptions(options);
  validateRateLimit(options.rateLimit);
  if (typeof protocolFactory !== "function") {
    throw new TypeError(
      `Cannot use protocolFactory of type ${typeof protocolFactory}: ` +
        `it must be a function that returns a DatagramProtocol`,
    );
  }
  // The address and socket options are checked by openDatagramSocket, still before the bind.
  const [socket, protocol] = await openEndpoint({
    hostname,
    port,
    reuseAddress: options.reuseAddress,
    reusePort: options.reusePort,
    receiveBufferSize: options.receiveBufferSize,
    sendBufferSize: options.sendBufferSize,
    backend: options.backend,
  }, protocolFactory);
  const guard = reflectionGuard || options.rateLimit
    ? new ReflectionGuard(socket.addr, options.rateLimit, reflectionGuard)
    : null;
  return new Server(socket, protocol, options, guard, shutdownTimeout);
}

class Server implements UdpServer {
  readonly addr: Deno.NetAddr;
  readonly backend: DatagramBackend;
  readonly #socket: DatagramSocket;
  readonly #transport: UdpTransport;
  readonly #guard: ReflectionGuard | null;
  readonly #shutdownTimeout: number;
  readonly #signal: AbortSignal | undefined;
  readonly #more: (() => Record<string, unknown>) | undefined;
  readonly #onAbort = () => void this.shutdown();
  #stopping = false;
  #stopped = false;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    socket: DatagramSocket,
    protocol: DatagramProtocol,
    options: UdpServerOptions,
    guard: ReflectionGuard | null,
    shutdownTimeout: number,
  ) {
    this.#socket = socket;
    this.addr = socket.addr;
    this.backend = socket.backend;
    this.#guard = guard;
    this.#shutdownTimeout = shutdownTimeout;
    this.#signal = options.signal;
    this.#more = (options as WithMoreCounters)[moreCounters];
    this.#transport = new UdpTransport(socket, protocol, options, {
      accept: guard?.accept,
      onClosed: () => {
        this.#stopped = true;
        clearTimeout(this.#timer);
        this.#signal?.removeEventListener("abort", this.#onAbort);
        udpLogger.info("UDP server on {address} stopped: {counters}", {
          address: formatAddress(this.addr),
          counters: this.counters,
        });
      },
    });
    // The program prints its own line per listener: one line, not two, on a terminal.
    udpLogger.debug("Listening on udp {address}", { address: formatAddress(this.addr) });
    this.#transport.start();
    if (this.#signal?.aborted) this.shutdown();
    else this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  get finished(): Promise<void> {
    return this.#transport.closed;
  }

  get counters(): UdpServerCounters {
    const guarded = this.#guard?.drops;
    const drops: DropCounts = {
      forbiddenPort: guarded?.forbiddenPort ?? 0,
      ownAddress: guarded?.ownAddress ?? 0,
      rateLimited: guarded?.rateLimited ?? 0,
      overflow: this.#socket.dropped + this.#transport.dropped.overflow,
      tooLarge: this.#transport.tooLarge,
      injected: this.#transport.dropped.injected,
      amplification: this.#transport.dropped.amplification,
    };
    const transport = this.#transport;
    const counters: UdpServerCounters = {
      // Datagrams the node:dgram queue dropped never reached the transport; on epoll the
      // overflow is of answers, to datagrams the transport counted already.
      received: transport.received + (this.#socket.backend === "node" ? this.#socket.dropped : 0),
      sent: transport.sent,
      sendErrors: transport.sendErrors,
      dropped: drops.forbiddenPort + drops.ownAddress + drops.rateLimited + drops.overflow +
        drops.tooLarge + drops.injected + drops.amplification,
      drops,
    };
    return this.#more === undefined ? counters : { ...counters, ...this.#more() };
  }

  getSocketOptions(): SocketOptionValues {
    if (this.#stopping) {
      throw new Deno.errors.BadResource(
        `Cannot read the socket options of the server on udp ${formatAddress(this.addr)}: ` +
          `it is shut down`,
      );
    }
    return readSocketOptionsOf({ transport: "udp", local: this.addr });
  }

  shutdown(): Promise<void> {
    if (this.#stopping) {
      this.#transport.abort();
      return this.finished;
    }
    this.#stopping = true;
    if (this.#stopped) return this.finished; // The socket failed and closed on its own.
    udpLogger.info("Shutting down udp {address}", { address: formatAddress(this.addr) });
    // Cleared once the socket is closed (onClosed runs on a later turn than this).
    this.#timer = setTimeout(() => {
      udpLogger.warning("Shutdown timeout: dropping {bytes} bytes of queued datagrams", {
        bytes: this.#transport.getWriteBufferSize(),
      });
      this.#transport.abort();
    }, this.#shutdownTimeout);
    this.#transport.closeAfterLastRead();
    return this.finished;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }
}
