/**
 * A TCP server that runs one {@linkcode Protocol} per connection, with a
 * handle shaped like `Deno.serve`'s.
 *
 * @module
 */

import type { Protocol, ProtocolFactory } from "./protocol.ts";
import {
  type ServerTransport,
  TcpTransport,
  type TransportOptions,
  validateTransportOptions,
} from "./transport.ts";
import { EpollTransport } from "./epoll_transport.ts";
import { EpollAcceptor } from "./epoll_acceptor.ts";
import { getPoller, type Poller } from "../poll/poller.ts";
import { findListenerFd } from "../sockopt/connection.ts";
import { tcpLogger } from "./_log.ts";
import { formatAddress } from "../_address.ts";
import { checkAddress, checkInteger } from "../_validate.ts";
import { isLocalCancel, privilegeHint } from "../errors.ts";
import { IdleClock } from "./idle.ts";
import { hasUnstableNet } from "../_unstable.ts";
import { type SocketOptions, validateSocketOptions } from "../sockopt/socket_options.ts";
import { type ConnectionSetup, setUpListener } from "../sockopt/setup.ts";
import { getSocketOptions, type SocketOptionValues } from "../sockopt/read_back.ts";

/**
 * The default time {@linkcode TcpServer.shutdown} lets connections flush: 10
 * seconds, in milliseconds. Connections still sending after it are aborted.
 *
 * @example Give slow peers longer
 * ```ts
 * import { DEFAULT_SHUTDOWN_TIMEOUT, serveEcho } from "@x/echo";
 *
 * const server = serveEcho({ port: 0, shutdownTimeout: 3 * DEFAULT_SHUTDOWN_TIMEOUT });
 * await server.shutdown();
 * ```
 */
export const DEFAULT_SHUTDOWN_TIMEOUT = 10_000;

/**
 * Where a TCP server listens, its socket options and its transports' buffers.
 *
 * @example
 * ```ts
 * import type { TcpServerOptions } from "@x/echo";
 *
 * const options: TcpServerOptions = {
 *   hostname: "127.0.0.1",
 *   port: 8888,
 *   backlog: 100,
 *   keepAlive: { idle: 1800, interval: 15, count: 5 },
 *   shutdownTimeout: 5000,
 * };
 * ```
 */
export interface TcpServerOptions extends TransportOptions, SocketOptions {
  /** The address to listen on. Default `"127.0.0.1"`. */
  hostname?: string;
  /** The port to listen on; 0 picks a free one (read it from `addr`). Default 0. */
  port?: number;
  /** Aborting this signal shuts the server down, as `shutdown()` does. */
  signal?: AbortSignal;
  /**
   * Milliseconds `shutdown()` lets open connections flush their buffered
   * writes before aborting them. Default 10000.
   */
  shutdownTimeout?: number;
  /**
   * The most connections open at once; one more is closed as soon as it is
   * accepted, and counted in `counters.refused`. Default: no limit.
   */
  maxConnections?: number;
  /**
   * Milliseconds a connection may go without reading or writing anything
   * before it is closed (within a quarter more), counted in
   * `counters.closedIdle`. Default: never.
   */
  idleTimeout?: number;
  /**
   * How connections are read and written; see {@linkcode TcpBackend}.
   * Default `"epoll"` where it can run (Linux with `--allow-ffi`), else `"deno"`.
   */
  backend?: TcpBackend;
}

/**
 * How a TCP server does its I/O:
 * - `"epoll"`: the server accepts, reads and writes through libc (FFI), driven
 *   by one epoll instance. Reads share one buffer, writes go straight to the
 *   socket, and a request costs two system calls and no Deno operation. Linux
 *   only, needs `--allow-ffi`.
 * - `"deno"`: `Deno.TcpConn` reads and writes, on any system and without FFI.
 *
 * @example Force Deno's own sockets
 * ```ts
 * import { serveEcho, type TcpBackend } from "@x/echo";
 *
 * const backend: TcpBackend = "deno";
 * const server = serveEcho({ port: 0, backend });
 * console.log(server.backend); // "deno"
 * await server.shutdown();
 * ```
 */
export type TcpBackend = "epoll" | "deno";

/**
 * Every {@linkcode TcpBackend}, for validation and help texts.
 *
 * @example
 * ```ts
 * import { TCP_BACKENDS } from "@x/echo";
 *
 * console.log(`--backend ${TCP_BACKENDS.join("|")}`);
 * ```
 */
export const TCP_BACKENDS: readonly TcpBackend[] = ["epoll", "deno"];

/**
 * What a TCP server has done so far.
 *
 * @example
 * ```ts
 * import type { TcpServerCounters } from "@x/echo";
 *
 * const report = (c: TcpServerCounters) => `${c.accepted} accepted, ${c.refused} refused`;
 * ```
 */
export interface TcpServerCounters {
  /** Connections accepted and served. */
  accepted: number;
  /** Connections closed at once because `maxConnections` were open. */
  refused: number;
  /** Connections closed for being quiet longer than `idleTimeout`. */
  closedIdle: number;
  /** Bytes read from all connections (for an echo server, equal to `bytesSent` once idle). */
  bytesReceived: number;
  /** Bytes written to all connections. */
  bytesSent: number;
}

/**
 * A running TCP server, as returned by {@linkcode serveTcp}. Shaped like the
 * server `Deno.serve` returns, so `await using` works.
 *
 * @example
 * ```ts
 * import { serveTcp } from "@x/echo";
 *
 * await using server = serveTcp({ port: 0 }, () => ({}));
 * console.log(`listening on ${server.addr.hostname}:${server.addr.port}`);
 * ```
 */
export interface TcpServer extends AsyncDisposable {
  /** The address the server listens on, with the real port when 0 was asked for. */
  readonly addr: Deno.NetAddr;
  /** The I/O backend in use (see {@linkcode TcpBackend}). */
  readonly backend: TcpBackend;
  /** Resolves once the server stopped accepting and every connection is closed. */
  readonly finished: Promise<void>;
  /** How many connections are open now. */
  readonly connections: number;
  /** A snapshot of the counters. */
  readonly counters: TcpServerCounters;
  /**
   * The listening socket's options read back from the kernel: on Linux, what
   * every accepted connection inherits. Needs `--allow-ffi`.
   *
   * @throws {Deno.errors.NotCapable} without `--allow-ffi`.
   */
  getSocketOptions(): SocketOptionValues;
  /**
   * Stops accepting, lets every open connection send what it has buffered,
   * then closes it; resolves when all are closed. Connections still flushing
   * after `shutdownTimeout` are aborted, and so are all of them on a second
   * call.
   */
  shutdown(): Promise<void>;
}

/**
 * Listens on `hostname:port` and runs a fresh protocol from `protocolFactory`
 * on each accepted connection.
 *
 * Socket options are set once on the listening socket where the kernel
 * passes them on to accepted sockets (buffers, TCP_NODELAY, keep-alive and
 * its timing), so accepting costs no extra system calls; only `quickAck`
 * works per connection. Without `--allow-ffi`, TCP_NODELAY and SO_KEEPALIVE
 * are set through Deno on each connection and one warning names the options
 * that could not be set.
 *
 * A protocol whose callback throws loses only its own connection (the error
 * is logged with the peer address); the server keeps accepting. Errors from
 * `accept` itself (such as running out of file descriptors) are logged and
 * retried with a growing pause.
 *
 * @example An echo protocol on an ephemeral port
 * ```ts
 * import { serveTcp, type Transport } from "@x/echo";
 *
 * const server = serveTcp({ hostname: "127.0.0.1", port: 0 }, () => {
 *   let transport: Transport;
 *   return {
 *     connectionMade(t) {
 *       transport = t;
 *     },
 *     dataReceived(data) {
 *       transport.write(data);
 *     },
 *   };
 * });
 * await server.shutdown();
 * ```
 *
 * @throws {Deno.errors.AddrInUse} when the port is taken; the message names the address.
 * @throws {Deno.errors.NotSupported} for `reusePort` without Deno's `--unstable-net` flag.
 * @throws {RangeError} for an option out of range, before any socket is opened.
 */
export function serveTcp(options: TcpServerOptions, protocolFactory: ProtocolFactory): TcpServer {
  const { hostname = "127.0.0.1", port = 0, shutdownTimeout = DEFAULT_SHUTDOWN_TIMEOUT } = options;
  checkAddress(hostname, port, 0);
  checkInteger("shutdownTimeout", shutdownTimeout, 0, 2 ** 31 - 1);
  if (options.maxConnections !== undefined) {
    checkInteger("maxConnections", options.maxConnections, 1, 2 ** 31 - 1);
  }
  if (options.idleTimeout !== undefined) {
    checkInteger("idleTimeout", options.idleTimeout, 1, 2 ** 31 - 1);
  }
  if (options.backend !== undefined && !TCP_BACKENDS.includes(options.backend)) {
    throw new RangeError(
      `Invalid backend: ${JSON.stringify(options.backend)}. Use "epoll" or "deno".`,
    );
  }
  validateTransportOptions(options);
  validateSocketOptions(options);
  if (typeof protocolFactory !== "function") {
    throw new TypeError(
      `Invalid protocolFactory: ${typeof protocolFactory}. Pass a function that returns a Protocol.`,
    );
  }
  const listener = listenTcp(hostname, port, options);
  let setup: ConnectionSetup;
  let epoll: EpollListener | null;
  try {
    setup = setUpListener(listener, options);
    epoll = options.backend === "deno" ? null : epollFor(listener, options.backend === "epoll");
  } catch (error) {
    listener.close();
    throw error;
  }
  return new Server(listener, protocolFactory, options, setup, shutdownTimeout, epoll);
}

/** The poller and the listener's descriptor, for the epoll backend. */
interface EpollListener {
  poller: Poller;
  fd: number;
}

/**
 * The epoll backend for `listener`, or `null` when it cannot run here (then
 * Deno's sockets serve).
 *
 * @throws {Deno.errors.NotSupported} when it cannot run and `required` says it must.
 */
function epollFor(listener: Deno.TcpListener, required: boolean): EpollListener | null {
  const poller = getPoller();
  let reason = typeof poller === "string" ? poller : "";
  const fd = reason === "" ? findListenerFd(listener) : -1;
  if (reason === "" && fd < 0) reason = "the listener's file descriptor was not found";
  if (reason === "") return { poller: poller as Poller, fd };
  if (required) {
    throw new Deno.errors.NotSupported(
      `The epoll backend cannot run here: ${reason}. ` +
        `Use backend "deno" (or leave it unset) to serve through Deno's own sockets.`,
    );
  }
  tcpLogger.debug("Serving through Deno's sockets: {reason}", { reason });
  return null;
}

/**
 * `Deno.listen` with the backlog and `reusePort`, and errors that name the
 * address and say what to try.
 */
export function listenTcp(
  hostname: string,
  port: number,
  { backlog, reusePort }: Pick<SocketOptions, "backlog" | "reusePort"> = {},
): Deno.TcpListener {
  // Deno exits the whole process when reusePort is used without the flag: check first.
  if (reusePort && !hasUnstableNet()) {
    throw new Deno.errors.NotSupported(
      "reusePort needs Deno's --unstable-net flag: run deno with --unstable-net " +
        '(or add "unstable": ["net"] to deno.json).',
    );
  }
  try {
    return Deno.listen({
      hostname,
      port,
      transport: "tcp",
      ...(backlog === undefined ? {} : { tcpBacklog: backlog }),
      ...(reusePort ? { reusePort } : {}),
    });
  } catch (error) {
    const where = formatAddress({ transport: "tcp", hostname, port });
    if (error instanceof Deno.errors.AddrInUse) {
      throw new Deno.errors.AddrInUse(
        `Cannot listen on ${where}: the address is already in use. ` +
          `Stop the other server or choose another port (0 picks a free one).`,
        { cause: error },
      );
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new Deno.errors.PermissionDenied(
        `Cannot listen on ${where}: permission denied` + privilegeHint(port, error),
        { cause: error },
      );
    }
    if (error instanceof Deno.errors.AddrNotAvailable) {
      throw new Deno.errors.AddrNotAvailable(
        `Cannot listen on ${where}: no local interface has that address. ` +
          `Use 127.0.0.1, 0.0.0.0 or an address of this machine.`,
        { cause: error },
      );
    }
    throw error;
  }
}

const MAX_ACCEPT_BACKOFF = 1000;

class Server implements TcpServer {
  readonly addr: Deno.NetAddr;
  readonly backend: TcpBackend;
  readonly #listener: Deno.TcpListener;
  readonly #poller: Poller | null;
  readonly #acceptor: EpollAcceptor | null;
  readonly #factory: ProtocolFactory;
  readonly #transportOptions: TransportOptions;
  readonly #setup: ConnectionSetup;
  readonly #shutdownTimeout: number;
  readonly #signal: AbortSignal | undefined;
  readonly #transports = new Set<ServerTransport>();
  readonly #finished = Promise.withResolvers<void>();
  readonly #maxConnections: number;
  readonly #idle: IdleClock | undefined;
  #accepted = 0;
  #refused = 0;
  /** Bytes of connections already closed; open ones keep their own count. */
  #bytesReceived = 0;
  #bytesSent = 0;
  readonly #forget = (transport: ServerTransport) => {
    this.#transports.delete(transport);
    this.#bytesReceived += transport.bytesReceived;
    this.#bytesSent += transport.bytesSent;
    if (this.#stopping) this.#maybeFinish();
  };
  readonly #onAbort = () => void this.shutdown();
  #stopping = false;
  #accepting = true;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  #backoff: { timer: ReturnType<typeof setTimeout>; resolve: () => void } | undefined;

  constructor(
    listener: Deno.TcpListener,
    factory: ProtocolFactory,
    options: TcpServerOptions,
    setup: ConnectionSetup,
    shutdownTimeout: number,
    epoll: EpollListener | null,
  ) {
    this.#listener = listener;
    this.addr = listener.addr;
    this.backend = epoll === null ? "deno" : "epoll";
    this.#poller = epoll?.poller ?? null;
    this.#factory = factory;
    this.#transportOptions = {
      readBufferSize: options.readBufferSize,
      highWaterMark: options.highWaterMark,
      lowWaterMark: options.lowWaterMark,
    };
    this.#setup = setup;
    this.#shutdownTimeout = shutdownTimeout;
    this.#signal = options.signal;
    this.#maxConnections = options.maxConnections ?? Infinity;
    if (options.idleTimeout !== undefined) {
      this.#idle = new IdleClock(options.idleTimeout, () => this.#transports);
    }
    tcpLogger.info("Listening on {address}", { address: formatAddress(this.addr) });
    if (epoll === null) {
      this.#acceptor = null;
      this.#acceptLoop();
    } else {
      this.#acceptor = new EpollAcceptor(
        epoll.poller,
        epoll.fd,
        formatAddress(this.addr),
        (fd, peer) => this.#startDescriptor(fd, peer),
      );
      this.#acceptor.start();
    }
    if (this.#signal?.aborted) this.shutdown();
    else this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  get finished(): Promise<void> {
    return this.#finished.promise;
  }

  get connections(): number {
    return this.#transports.size;
  }

  get counters(): TcpServerCounters {
    let bytesReceived = this.#bytesReceived;
    let bytesSent = this.#bytesSent;
    for (const transport of this.#transports) {
      bytesReceived += transport.bytesReceived;
      bytesSent += transport.bytesSent;
    }
    return {
      accepted: this.#accepted,
      refused: this.#refused,
      closedIdle: this.#idle?.closed ?? 0,
      bytesReceived,
      bytesSent,
    };
  }

  getSocketOptions(): SocketOptionValues {
    if (this.#stopping) {
      throw new Deno.errors.BadResource(
        `Cannot read the socket options of the server on ${formatAddress(this.addr)}: ` +
          `it is shut down.`,
      );
    }
    return getSocketOptions(this.#listener);
  }

  shutdown(): Promise<void> {
    if (this.#stopping) {
      this.#abortAll();
      return this.finished;
    }
    this.#stopping = true;
    tcpLogger.info("Shutting down: {count} open connections", { count: this.#transports.size });
    this.#signal?.removeEventListener("abort", this.#onAbort);
    if (this.#acceptor !== null) {
      this.#acceptor.stop();
      this.#accepting = false;
    }
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    if (this.#backoff) {
      clearTimeout(this.#backoff.timer);
      this.#backoff.resolve();
    }
    // Reads already completed but not yet seen are delivered and answered
    // first (see TcpTransport.readLast); then each connection flushes and closes.
    for (const transport of this.#transports) transport.readLast();
    this.#closeTimer = setTimeout(() => {
      for (const transport of this.#transports) transport.close();
    }, 0);
    if (this.#transports.size > 0) {
      this.#timer = setTimeout(() => {
        tcpLogger.warning("Shutdown timeout: aborting {count} connections still flushing", {
          count: this.#transports.size,
        });
        this.#abortAll();
      }, this.#shutdownTimeout);
    }
    this.#maybeFinish();
    return this.finished;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }

  #abortAll(): void {
    for (const transport of this.#transports) transport.abort();
  }

  #maybeFinish(): void {
    if (this.#accepting || this.#transports.size > 0) return;
    clearTimeout(this.#timer);
    clearTimeout(this.#closeTimer);
    this.#idle?.stop();
    tcpLogger.info("Server on {address} stopped: {counters}", {
      address: formatAddress(this.addr),
      counters: this.counters,
    });
    // With epoll, finished also waits for the poller's wait to end when nothing else uses it.
    this.#finished.resolve(this.#poller?.whenIdle());
  }

  async #acceptLoop(): Promise<void> {
    let backoff = 0;
    while (!this.#stopping) {
      try {
        // The iterator ends when the listener is closed and throws on other
        // accept errors, after which a fresh iterator carries on.
        for await (const conn of this.#listener) {
          backoff = 0;
          this.#startConnection(conn);
        }
      } catch (error) {
        if (this.#stopping || isLocalCancel(error)) break;
        backoff = Math.min(Math.max(backoff * 2, 10), MAX_ACCEPT_BACKOFF);
        tcpLogger.error("Accept on {address} failed: {error}; retrying in {ms} ms", {
          address: formatAddress(this.addr),
          error,
          ms: backoff,
        });
        await new Promise<void>((resolve) => {
          this.#backoff = { timer: setTimeout(resolve, backoff), resolve };
        });
        this.#backoff = undefined;
        continue;
      }
      break;
    }
    this.#accepting = false;
    if (!this.#stopping) {
      // The listener was closed under us: treat it as a shutdown.
      this.shutdown();
    }
    this.#maybeFinish();
  }

  #startConnection(conn: Deno.TcpConn): void {
    const protocol = this.#admit(conn.remoteAddr);
    if (protocol === null) {
      conn.close();
      return;
    }
    this.#run(
      new TcpTransport(conn, protocol, this.#transportOptions, this.#setup, {
        onClosed: this.#forget,
        idle: this.#idle,
      }),
    );
  }

  #startDescriptor(fd: number, peer: Deno.NetAddr): void {
    const protocol = this.#admit(peer);
    if (protocol === null) {
      this.#poller!.libc.symbols.close(fd);
      return;
    }
    this.#run(
      new EpollTransport(fd, peer, this.#poller!, protocol, this.#transportOptions, this.#setup, {
        onClosed: this.#forget,
        idle: this.#idle,
      }),
    );
  }

  /** A protocol for the connection from `peer`, or `null` when it must be closed at once. */
  #admit(peer: Deno.NetAddr): Protocol | null {
    if (this.#stopping) return null;
    if (this.#transports.size >= this.#maxConnections) {
      this.#refused++;
      tcpLogger.debug("Refused {peer}: {count} connections open, the most allowed", {
        peer: formatAddress(peer),
        count: this.#transports.size,
      });
      return null;
    }
    try {
      return this.#factory();
    } catch (error) {
      tcpLogger.error("Protocol factory threw for {peer}; closing that connection: {error}", {
        peer: formatAddress(peer),
        error,
      });
      return null;
    }
  }

  #run(transport: ServerTransport): void {
    this.#accepted++;
    this.#transports.add(transport);
    transport.start();
  }
}
