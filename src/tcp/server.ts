/**
 * A TCP server that runs one {@linkcode Protocol} per connection, with a
 * handle shaped like `Deno.serve`'s. The server is the same on every
 * backend: an {@linkcode Acceptor} hands it each connection as a driver, and
 * it runs a {@linkcode SocketTransport} over it.
 *
 * @module
 */

import type { ConnAddr, Protocol, ProtocolFactory } from "../core/protocol.ts";
import { type Driver, SocketTransport, type TransportHooks } from "../core/_transport.ts";
import { type TransportOptions, validateTransportOptions } from "../core/options.ts";
import { BufferBudget, DEFAULT_MAX_BUFFERED } from "../core/budget.ts";
import { IdleClock } from "../core/_idle.ts";
import { tcpLogger } from "../core/_log.ts";
import { formatAddress } from "../_address.ts";
import { checkAddress, checkInteger } from "../_validate.ts";
import { type SocketOptions, validateSocketOptions } from "../sockopt/socket_options.ts";
import type { SocketOptionValues } from "../sockopt/read_back.ts";
import type { Acceptor } from "./_acceptor.ts";
import { openAcceptor } from "./_listen.ts";
import { SummedNotice } from "./_notice.ts";
import { type CidrList, parseCidrList } from "../proxy/trusted.ts";
import { moreCounters, type WithMoreCounters } from "../_more_counters.ts";
import {
  givePlace,
  sharedConnections,
  takePlace,
  type WithSharedConnections,
} from "./_shared_limit.ts";
import { validateTlsServerOptions } from "./_tls.ts";

/**
 * The default time {@linkcode TcpServer.shutdown} lets connections flush: 10
 * seconds, in milliseconds. Connections still sending after it are aborted.
 *
 * @example Give slow peers longer
 * ```ts
 * import { DEFAULT_SHUTDOWN_TIMEOUT } from "@x/echo/tcp";
 * import { serveEcho } from "@x/echo";
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
  /**
   * Listen on the Unix domain socket (stream) at this path instead of
   * `hostname:port`; `addr` is then a `Deno.UnixAddr`, and so are
   * `peername` and `sockname` of each connection (the peer's path is
   * `null`: clients do not bind). A stale socket file at the path (nothing
   * listens on it: a server crashed) is replaced; a live one is refused
   * (`Deno.errors.AddrInUse`), and a file that is not a socket is never
   * removed (`Deno.errors.AlreadyExists`). The file is removed at the
   * shutdown. Runs on the deno backend; TCP's socket options do not apply.
   */
  path?: string;
  /**
   * Serve TLS on every connection (`Deno.listenTls`; the deno backend):
   * the certificate and key as PEM text, see {@linkcode TlsServerOptions}.
   * A connection's handshake is over before `connectionMade`, whose
   * `getExtraInfo("tls")` then tells the ALPN protocol; one that fails
   * (a plain TCP client, a client that rejects the certificate) or takes
   * longer than `handshakeTimeout` is closed, counted in
   * `counters.tlsFailed` and logged at debug, never served.
   */
  tls?: TlsServerOptions;
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
  /**
   * The most bytes all connections together may hold on their peers' behalf
   * (writes the kernel has not taken, unread stream data, an `until` echo's
   * kept bytes). Past it, connections stop reading, the ones holding the
   * most first, until buffers drain; connections holding nothing go on.
   * Default 64 MiB ({@linkcode DEFAULT_MAX_BUFFERED}).
   */
  maxBuffered?: number;
  /**
   * Every connection begins with a PROXY protocol header (v1 or v2, told
   * apart by the v2 signature), as a load balancer such as HAProxy
   * (`send-proxy`, `send-proxy-v2`) or nginx (`proxy_protocol on`) sends
   * it: `true`, or options. Its presence is never guessed: a connection
   * whose first bytes are not a valid header, or whose header is not whole
   * within the timeout, is closed unanswered and counted in
   * `counters.proxyRefused` (logged at debug with the reason). The protocol
   * is made once the header came; `getExtraInfo("peername")` is then the
   * client the header names (LOCAL, as in HAProxy's health checks, and
   * UNKNOWN headers keep the socket's peer), `"proxyPeername"` the proxy,
   * and `"proxyHeader"` the header with its TLVs. Bytes that followed the
   * header in the same segment are delivered as data. Default: off.
   */
  proxyProtocol?: boolean | ProxyProtocolOptions;
}

/**
 * A TLS server's certificate, key and ALPN protocols; see
 * {@linkcode TcpServerOptions.tls}. Deno's TLS (rustls) offers TLS 1.2 and
 * 1.3; it cannot ask clients for certificates (no mutual TLS), nor tell
 * the server which name a client asked for (SNI) or which version was
 * settled, nor serve several certificates by name.
 *
 * @example
 * ```ts ignore
 * import { serveEcho } from "@x/echo";
 *
 * const server = serveEcho({
 *   port: 8443,
 *   tls: {
 *     cert: Deno.readTextFileSync("cert.pem"),
 *     key: Deno.readTextFileSync("key.pem"),
 *     alpnProtocols: ["h2", "http/1.1"],
 *   },
 * });
 * ```
 */
export interface TlsServerOptions {
  /** The certificate chain, PEM text (the server's certificate first). */
  cert: string;
  /** The private key of the certificate, PEM text (RSA, EC or PKCS#8). */
  key: string;
  /** The ALPN protocols to offer, in order of preference. Default: no ALPN. */
  alpnProtocols?: string[];
  /** Milliseconds a connection's handshake may take before it is closed. Default 10000. */
  handshakeTimeout?: number;
}

/**
 * How a server takes the PROXY protocol; see
 * {@linkcode TcpServerOptions.proxyProtocol}.
 *
 * @example Behind two load balancers, headers within a second
 * ```ts
 * import type { ProxyProtocolOptions } from "@x/echo/tcp";
 *
 * const proxy: ProxyProtocolOptions = { timeout: 1000, trusted: ["10.0.0.5", "10.0.0.6"] };
 * ```
 */
export interface ProxyProtocolOptions {
  /**
   * Milliseconds a connection has to send its whole header. Default 3000
   * (the spec asks receivers to wait at least 3 seconds).
   */
  timeout?: number;
  /**
   * The proxies allowed to connect: addresses and CIDR blocks, as a list or
   * comma-separated (`"10.0.0.0/8,::1"`). A connection from elsewhere is
   * closed at once, counted in `counters.untrusted`. Default: any source.
   */
  trusted?: string | readonly string[];
}

/**
 * The PROXY header timeout when none is given: 3 seconds, in milliseconds.
 *
 * @example
 * ```ts
 * import { DEFAULT_PROXY_TIMEOUT } from "@x/echo/tcp";
 *
 * console.log(DEFAULT_PROXY_TIMEOUT / 1000); // 3
 * ```
 */
export const DEFAULT_PROXY_TIMEOUT = 3000;

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
 * import { serveEcho } from "@x/echo";
 * import { type TcpBackend } from "@x/echo/tcp";
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
 * import { TCP_BACKENDS } from "@x/echo/tcp";
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
 * import type { TcpServerCounters } from "@x/echo/tcp";
 *
 * const report = (c: TcpServerCounters) => `${c.accepted} accepted, ${c.refused} refused`;
 * ```
 */
export interface TcpServerCounters {
  /**
   * Connections accepted and served (with `proxyProtocol`, once their
   * header was read: those refused for it count in `proxyRefused` only).
   */
  accepted: number;
  /** Connections closed at once because `maxConnections` were open. */
  refused: number;
  /** Connections closed for being quiet longer than `idleTimeout`. */
  closedIdle: number;
  /** Bytes read from all connections (for an echo server, equal to `bytesSent` once idle). */
  bytesReceived: number;
  /** Bytes written to all connections. */
  bytesSent: number;
  /** Bytes the connections hold now against `maxBuffered`. */
  buffered: number;
  /** The most bytes the connections held at once. */
  bufferedPeak: number;
  /** Times a connection stopped reading because `maxBuffered` was reached. */
  budgetPauses: number;
  /**
   * Connections closed unanswered for their PROXY header: missing, invalid,
   * or not whole within the timeout (0 without `proxyProtocol`).
   */
  proxyRefused: number;
  /** Connections closed at once for coming from a source `proxyProtocol.trusted` leaves out. */
  untrusted: number;
  /**
   * TLS handshakes that failed or took longer than the timeout (a plain
   * TCP client, a client that rejected the certificate); those connections
   * were closed, never served (0 without `tls`).
   */
  tlsFailed: number;
}

/**
 * A running TCP server, as returned by {@linkcode serveTcp}. Shaped like the
 * server `Deno.serve` returns, so `await using` works. `A` is the type of
 * its address: `Deno.UnixAddr` for a server on a Unix socket (`path`).
 *
 * @example
 * ```ts
 * import { serveTcp } from "@x/echo";
 *
 * await using server = serveTcp({ port: 0 }, () => ({}));
 * console.log(`listening on ${server.addr.hostname}:${server.addr.port}`);
 * ```
 */
export interface TcpServer<A extends ConnAddr = Deno.NetAddr> extends AsyncDisposable {
  /**
   * The address the server listens on, with the real port when 0 was asked
   * for (a Unix socket's path for a server given `path`).
   */
  readonly addr: A;
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
   * @throws {Deno.errors.NotSupported} for a server on a Unix socket.
   */
  getSocketOptions(): SocketOptionValues;
  /**
   * Stops accepting and reading (what a read in flight brings is still
   * answered), lets every open connection send what it has buffered, then
   * closes it; resolves when all are closed. The echo first sends what its
   * faults hold back and what `until` mode kept, and the stream API's
   * handlers see the end of their input and may still write; the
   * connection closes when they return. Connections still flushing after
   * `shutdownTimeout` are aborted, and so are all of them on a second call.
   */
  shutdown(): Promise<void>;
}

/**
 * Listens on `hostname:port` (or, given `path`, on that Unix socket: this
 * signature, whose `addr` is a `Deno.UnixAddr`) and runs a fresh protocol
 * from `protocolFactory` on each accepted connection; with `tls`, over TLS.
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
 * @example On a Unix socket
 * ```ts ignore
 * import { serveTcp } from "@x/echo";
 *
 * const server = serveTcp({ path: "/tmp/echo.sock" }, () => ({}));
 * console.log(server.addr.path); // "/tmp/echo.sock"
 * await server.shutdown(); // removes /tmp/echo.sock
 * ```
 *
 * @throws {Deno.errors.AddrInUse} when the port is taken, or a server listens on `path`; the
 * message names the address.
 * @throws {Deno.errors.AlreadyExists} when `path` is a file that is not a socket.
 * @throws {Deno.errors.NotSupported} for `reusePort` on the deno backend without Deno's
 * `--unstable-net` flag (the epoll backend needs none), or `backend: "epoll"` where it cannot
 * run or with `path` or `tls`.
 * @throws {TypeError} for a certificate or key that cannot be used.
 * @throws {RangeError} for an option out of range, before any socket is opened.
 */
export function serveTcp(
  options: TcpServerOptions & { path: string },
  protocolFactory: ProtocolFactory,
): TcpServer<Deno.UnixAddr>;
/**
 * Listens on `hostname:port` and runs a fresh protocol from
 * `protocolFactory` on each accepted connection; see the first signature.
 *
 * @example
 * ```ts
 * import { serveTcp } from "@x/echo";
 *
 * const server = serveTcp({ port: 0 }, () => ({}));
 * console.log(server.addr.port > 0); // true
 * await server.shutdown();
 * ```
 */
export function serveTcp(options: TcpServerOptions, protocolFactory: ProtocolFactory): TcpServer;
export function serveTcp(
  options: TcpServerOptions,
  protocolFactory: ProtocolFactory,
): TcpServer<ConnAddr> {
  const { hostname = "127.0.0.1", port = 0, shutdownTimeout = DEFAULT_SHUTDOWN_TIMEOUT } = options;
  checkAddress(hostname, port, 0);
  checkPathAndTls(options);
  checkInteger("shutdownTimeout", shutdownTimeout, 0, 2 ** 31 - 1);
  if (options.maxConnections !== undefined) {
    checkInteger("maxConnections", options.maxConnections, 1, 2 ** 31 - 1);
  }
  if (options.idleTimeout !== undefined) {
    checkInteger("idleTimeout", options.idleTimeout, 1, 2 ** 31 - 1);
  }
  if (options.maxBuffered !== undefined) {
    checkInteger("maxBuffered", options.maxBuffered, 1, 2 ** 53 - 1);
  }
  if (options.backend !== undefined && !TCP_BACKENDS.includes(options.backend)) {
    throw new RangeError(
      `Cannot use backend ${JSON.stringify(options.backend)}: it must be "epoll" or "deno"`,
    );
  }
  validateTransportOptions(options);
  validateSocketOptions(options);
  const proxy = resolveProxyProtocol(options.proxyProtocol);
  if (typeof protocolFactory !== "function") {
    throw new TypeError(
      `Cannot use protocolFactory of type ${typeof protocolFactory}: ` +
        `it must be a function that returns a Protocol`,
    );
  }
  const acceptor = openAcceptor({ ...options, hostname, port });
  try {
    return new Server(acceptor, protocolFactory, options, shutdownTimeout, proxy);
  } catch (error) {
    acceptor.stop();
    throw error;
  }
}

/**
 * Checks `path` and `tls`, and the options they rule out.
 *
 * @throws {TypeError} for a bad path, bad TLS material, or options that conflict with them.
 */
function checkPathAndTls(options: TcpServerOptions): void {
  const { path, tls } = options;
  if (path !== undefined) {
    if (typeof path !== "string" || path === "" || path.includes("\0")) {
      throw new TypeError(
        `Cannot listen on unix socket ${JSON.stringify(path)}: the path must be a non-empty ` +
          `string without NUL, such as "/tmp/echo.sock"`,
      );
    }
    const conflict = tls !== undefined
      ? "tls (Deno's TLS listens on TCP only)"
      : options.reusePort
      ? "reusePort (a TCP option)"
      : typeof options.proxyProtocol === "object" && options.proxyProtocol?.trusted !== undefined
      ? "proxyProtocol.trusted (a Unix socket's peers have no address to match)"
      : null;
    if (conflict !== null) {
      throw new TypeError(`Cannot listen on unix socket ${path} with ${conflict}; drop one`);
    }
  }
  if (tls !== undefined) {
    validateTlsServerOptions(tls);
    if (options.proxyProtocol) {
      throw new TypeError(
        "Cannot use tls with proxyProtocol: Deno's TLS listener reads the handshake first, " +
          "while a proxy sends its PROXY header before it; drop one",
      );
    }
  }
}

/** The PROXY protocol settings in force, checked. */
interface ResolvedProxyProtocol {
  timeout: number;
  trusted: CidrList | null;
}

/**
 * Checks `proxyProtocol` and fills in its defaults; `null` when it is off.
 *
 * @throws {TypeError} for a value that is neither a boolean nor options.
 * @throws {RangeError} for a timeout out of range or a trusted entry that is no address.
 */
function resolveProxyProtocol(
  value: boolean | ProxyProtocolOptions | undefined,
): ResolvedProxyProtocol | null {
  if (value === undefined || value === false) return null;
  if (value === true) return { timeout: DEFAULT_PROXY_TIMEOUT, trusted: null };
  if (typeof value !== "object" || value === null) {
    throw new TypeError(
      `Cannot use proxyProtocol ${JSON.stringify(value)}: ` +
        `it must be true, false or { timeout, trusted }`,
    );
  }
  const { timeout = DEFAULT_PROXY_TIMEOUT, trusted } = value;
  checkInteger("proxyProtocol.timeout", timeout, 1, 2 ** 31 - 1);
  return { timeout, trusted: trusted === undefined ? null : parseCidrList(trusted) };
}

class Server implements TcpServer<ConnAddr> {
  readonly addr: ConnAddr;
  readonly backend: TcpBackend;
  readonly #acceptor: Acceptor;
  readonly #factory: ProtocolFactory;
  readonly #transportOptions: TransportOptions;
  readonly #hooks: TransportHooks;
  readonly #shutdownTimeout: number;
  readonly #signal: AbortSignal | undefined;
  readonly #transports = new Set<SocketTransport>();
  readonly #finished = Promise.withResolvers<void>();
  readonly #maxConnections: number;
  /** The connections open in the servers of this listener in all event loops, if shared. */
  readonly #shared: Int32Array | null;
  readonly #idle: IdleClock | undefined;
  readonly #budget: BufferBudget;
  readonly #more: (() => Record<string, unknown>) | undefined;
  #accepted = 0;
  #refused = 0;
  #proxyRefused = 0;
  #untrusted = 0;
  #tlsFailed = 0;
  readonly #trusted: CidrList | null;
  /** Bytes of connections already closed; open ones keep their own count. */
  #bytesReceived = 0;
  #bytesSent = 0;
  readonly #onAbort = () => void this.shutdown();
  #stopping = false;
  /** The shutdown takes the connections the kernel queued (see `shutdown`). */
  #acceptingQueued = false;
  #accepting = true;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Refusals at the limit and idle closes, summed up at info once a second. */
  readonly #refusedNotice: SummedNotice;
  readonly #idleNotice: SummedNotice | undefined;
  #localNotice: SummedNotice | undefined;

  constructor(
    acceptor: Acceptor,
    factory: ProtocolFactory,
    options: TcpServerOptions,
    shutdownTimeout: number,
    proxy: ResolvedProxyProtocol | null,
  ) {
    this.#acceptor = acceptor;
    this.#trusted = proxy?.trusted ?? null;
    this.addr = acceptor.addr;
    this.backend = acceptor.backend;
    this.#factory = factory;
    this.#transportOptions = {
      highWaterMark: options.highWaterMark,
      lowWaterMark: options.lowWaterMark,
    };
    this.#shutdownTimeout = shutdownTimeout;
    this.#signal = options.signal;
    this.#maxConnections = options.maxConnections ?? Infinity;
    this.#shared = options.maxConnections === undefined
      ? null
      : (options as WithSharedConnections)[sharedConnections] ?? null;
    const address = formatAddress(this.addr);
    this.#refusedNotice = new SummedNotice((count) =>
      tcpLogger.info(
        "Refused {count} connections on {address} in the last second: {max} were open, " +
          "the most allowed",
        { count, address, max: this.#maxConnections },
      )
    );
    this.#more = (options as WithMoreCounters)[moreCounters];
    if (options.idleTimeout !== undefined) {
      const seconds = options.idleTimeout / 1000;
      this.#idleNotice = new SummedNotice((count) =>
        tcpLogger.info(
          "Closed {count} connections on {address} in the last second: quiet for {seconds} s",
          { count, address, seconds },
        )
      );
      const notice = this.#idleNotice;
      this.#idle = new IdleClock(options.idleTimeout, () => this.#transports, () => notice.add());
    }
    this.#budget = new BufferBudget(
      options.maxBuffered ?? DEFAULT_MAX_BUFFERED,
      () => this.#transports,
    );
    this.#hooks = {
      onClosed: (transport) => this.#forget(transport),
      idle: this.#idle,
      budget: this.#budget,
    };
    if (proxy !== null) {
      const checks = new SummedNotice((count) =>
        tcpLogger.info(
          "Answered {count} PROXY LOCAL connections (health checks) on {address} in the last second",
          { count, address },
        )
      );
      this.#localNotice = checks;
      this.#hooks.proxy = {
        timeout: proxy.timeout,
        refused: (transport, reason) => {
          this.#proxyRefused++;
          tcpLogger.debug("Closed {peer} unanswered: {reason}", { peer: transport.peer, reason });
        },
        local: () => checks.add(),
        accepted: () => this.#accepted++,
      };
    }
    try {
      acceptor.start(
        (driver) => this.#serve(driver),
        (error) => this.#acceptorEnded(error),
        (peer, error) => {
          this.#tlsFailed++;
          tcpLogger.debug("TLS handshake with {peer} failed: {error}", {
            peer: formatAddress(peer),
            error: error instanceof Error ? error.message : String(error),
          });
        },
      );
    } catch (error) {
      this.#idle?.stop(); // serveTcp closes the acceptor
      throw error;
    }
    // The program prints its own line per listener: one line, not two, on a terminal.
    tcpLogger.debug("Listening on {address}", { address: formatAddress(this.addr) });
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
    const counters: TcpServerCounters = {
      accepted: this.#accepted,
      refused: this.#refused,
      closedIdle: this.#idle?.closed ?? 0,
      bytesReceived,
      bytesSent,
      buffered: this.#budget.used,
      bufferedPeak: this.#budget.peak,
      budgetPauses: this.#budget.pauses,
      proxyRefused: this.#proxyRefused,
      untrusted: this.#untrusted,
      tlsFailed: this.#tlsFailed,
    };
    return this.#more === undefined ? counters : { ...counters, ...this.#more() };
  }

  getSocketOptions(): SocketOptionValues {
    if (this.#stopping) {
      throw new Deno.errors.BadResource(
        `Cannot read the socket options of the server on ${formatAddress(this.addr)}: ` +
          `it is shut down`,
      );
    }
    return this.#acceptor.getSocketOptions();
  }

  shutdown(): Promise<void> {
    if (this.#stopping) {
      this.#abortAll();
      return this.finished;
    }
    this.#stopping = true;
    // What the kernel already accepted is served like the open connections: a load balancer
    // handed it over before it saw us go, and the listener's close would reset it.
    this.#acceptingQueued = true;
    try {
      this.#acceptor.acceptQueued();
    } finally {
      this.#acceptingQueued = false;
    }
    tcpLogger.info("Shutting down: {count} open connections", { count: this.#transports.size });
    this.#signal?.removeEventListener("abort", this.#onAbort);
    this.#acceptor.stop().then(() => {
      this.#accepting = false;
      this.#maybeFinish();
    });
    // Reads in flight are delivered and answered first; then each connection
    // flushes and closes (see SocketTransport.closeAfterLastRead).
    for (const transport of this.#transports) transport.closeAfterLastRead();
    if (this.#transports.size > 0) {
      this.#timer = setTimeout(() => {
        tcpLogger.warning("Shutdown timeout: aborting {count} connections still flushing", {
          count: this.#transports.size,
        });
        this.#abortAll();
      }, this.#shutdownTimeout);
    }
    return this.finished;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }

  #abortAll(): void {
    for (const transport of this.#transports) transport.abort();
  }

  /** Accepting ended on its own: the listener was closed under us, or the poller failed. */
  #acceptorEnded(error?: Error): void {
    if (error !== undefined) {
      tcpLogger.error("Server on {address} can no longer accept: {error}", {
        address: formatAddress(this.addr),
        error,
      });
    }
    this.shutdown();
  }

  #maybeFinish(): void {
    if (this.#accepting || this.#transports.size > 0) return;
    clearTimeout(this.#timer);
    this.#idle?.stop();
    this.#refusedNotice.stop();
    this.#idleNotice?.stop();
    this.#localNotice?.stop();
    tcpLogger.info("Server on {address} stopped: {counters}", {
      address: formatAddress(this.addr),
      counters: this.counters,
    });
    // Finished also waits for what the backend runs to end (the epoll wait), when nothing else uses it.
    this.#finished.resolve(this.#acceptor.idle());
  }

  #forget(transport: SocketTransport): void {
    this.#transports.delete(transport);
    if (this.#shared !== null) givePlace(this.#shared);
    this.#bytesReceived += transport.bytesReceived;
    this.#bytesSent += transport.bytesSent;
    if (this.#stopping) this.#maybeFinish();
  }

  /** Runs a protocol on the connection `driver` carries, or closes it at once. */
  #serve(driver: Driver): void {
    const protocol = this.#admit(driver.peerAddr);
    if (protocol === null) return driver.close();
    const transport = new SocketTransport(driver, protocol, this.#transportOptions, this.#hooks);
    // Behind a PROXY header, a connection counts once the header was read (see the hooks).
    if (this.#hooks.proxy === undefined) this.#accepted++;
    this.#transports.add(transport);
    transport.start();
  }

  /** A protocol for the connection from `peer`, or `null` when it must be closed at once. */
  #admit(peer: ConnAddr): Protocol | null {
    if (this.#stopping && !this.#acceptingQueued) return null;
    if (this.#trusted !== null && !this.#trusted.includes((peer as Deno.NetAddr).hostname)) {
      this.#untrusted++;
      tcpLogger.debug("Refused {peer}: not a trusted PROXY protocol source", {
        peer: formatAddress(peer),
      });
      return null;
    }
    const shared = this.#shared;
    if (
      shared === null
        ? this.#transports.size >= this.#maxConnections
        : !takePlace(shared, this.#maxConnections)
    ) {
      this.#refused++;
      this.#refusedNotice.add();
      tcpLogger.debug("Refused {peer}: {count} connections open, the most allowed", {
        peer: formatAddress(peer),
        count: shared === null ? this.#transports.size : Atomics.load(shared, 0),
      });
      return null;
    }
    const protocol = this.#protocolFor(peer);
    if (protocol === null && shared !== null) givePlace(shared);
    return protocol;
  }

  /** A protocol from the factory, or `null` (logged) when it threw or returned no object. */
  #protocolFor(peer: ConnAddr): Protocol | null {
    let protocol: unknown;
    try {
      protocol = this.#factory();
    } catch (error) {
      tcpLogger.error("Protocol factory threw for {peer}; closing that connection: {error}", {
        peer: formatAddress(peer),
        error,
      });
      return null;
    }
    if (typeof protocol !== "object" || protocol === null) {
      tcpLogger.error(
        "Protocol factory returned {value} for {peer}; closing that connection. " +
          "Return an object with the Protocol callbacks.",
        { value: protocol === null ? "null" : typeof protocol, peer: formatAddress(peer) },
      );
      return null;
    }
    return protocol as Protocol;
  }
}
