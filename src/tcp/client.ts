/**
 * TCP clients in the protocol-callback shape.
 *
 * @module
 */

import type { Protocol, TlsInfo, Transport } from "../core/protocol.ts";
import { SocketTransport } from "../core/_transport.ts";
import { type TransportOptions, validateTransportOptions } from "../core/options.ts";
import { ConnDriver } from "../drivers/_conn_driver.ts";
import { EpollDriver } from "../drivers/_epoll_driver.ts";
import { getPoller } from "../poll/_poller.ts";
import { connectEpollSocket } from "./_epoll_connect.ts";
import { resolveHost } from "../sockets/_resolve.ts";
import { checkAddress } from "../_validate.ts";
import { formatAddress } from "../_address.ts";
import { type ConnectionSocketOptions, validateSocketOptions } from "../sockopt/socket_options.ts";
import { type ConnectionSetup, setUpConnection } from "../sockopt/_setup.ts";
import { encodeProxyHeader, type ProxyHeaderOptions } from "../proxy/encode.ts";
import type { Driver } from "../core/_transport.ts";
import { startClientTls, validateTlsConnectOptions } from "./_tls.ts";

/**
 * Where a TCP client connects to, and its socket options.
 *
 * @example
 * ```ts
 * import type { TcpConnectOptions } from "@x/echo";
 *
 * const options: TcpConnectOptions = { hostname: "127.0.0.1", port: 8888, keepAlive: true };
 * ```
 */
export interface TcpConnectOptions extends TransportOptions, ConnectionSocketOptions {
  /** The host to connect to. Default `"127.0.0.1"`. */
  hostname?: string;
  /** The port to connect to; required unless `path` is given. */
  port?: number;
  /**
   * Connect to the Unix domain socket (stream) at this path instead of
   * `hostname:port` (the deno backend; TCP's socket options do not apply).
   */
  path?: string;
  /**
   * Connect over TLS (`Deno.startTls` on the TCP connection; the deno
   * backend): `{}` trusts the system's root certificates, or see
   * {@linkcode TlsConnectOptions}. The handshake is over when the promise
   * resolves; `getExtraInfo("tls")` tells what it settled. Deno cannot skip
   * the certificate's verification from code: run deno with
   * `--unsafely-ignore-certificate-errors[=HOST]` for that.
   */
  tls?: TlsConnectOptions;
  /**
   * The I/O under the connection: `"deno"` (default), `Deno.connect` and its
   * conn's awaited reads and writes; `"epoll"`, a socket this module opens
   * and connects through libc and the poller drives, as the epoll server
   * backend does its connections (Linux with `--allow-ffi`; faster under
   * load).
   */
  backend?: "deno" | "epoll";
  /**
   * Begin the connection with a PROXY protocol header, as a load balancer
   * would, to test a server meant to sit behind one: `1` or `2` for that
   * version with this connection's own addresses (the local address as the
   * source, the server as the destination), or the header's options, where
   * a missing `source` or `destination` is filled in the same way. The
   * header goes out before anything `connectionMade` writes. Default: none.
   */
  sendProxy?: 1 | 2 | ProxyHeaderOptions;
}

/**
 * How a client runs TLS; see {@linkcode TcpConnectOptions.tls}.
 *
 * @example Trust a CA of your own, check the name "localhost", offer h2
 * ```ts ignore
 * import { connectTcpStreams } from "@x/echo";
 *
 * const { reader, writer } = await connectTcpStreams({
 *   port: 8443,
 *   tls: { caCerts: [Deno.readTextFileSync("ca.pem")], serverName: "localhost", alpnProtocols: ["h2"] },
 * });
 * ```
 */
export interface TlsConnectOptions {
  /** PEM certificates to trust besides the system's roots (a CA's, or a self-signed server's). */
  caCerts?: string[];
  /**
   * The name to send (SNI) and check the certificate against. Default: the
   * `hostname` connected to (an IP address is checked against the
   * certificate's IP addresses, and sends no SNI).
   */
  serverName?: string;
  /** The ALPN protocols to offer, in order of preference. Default: no ALPN. */
  alpnProtocols?: string[];
  /** Milliseconds the handshake may take. Default 10000. */
  handshakeTimeout?: number;
}

/**
 * A connected client: its transport and the protocol that runs on it.
 *
 * @example
 * ```ts
 * import { connectTcp, type TcpConnection } from "@x/echo";
 *
 * async function hello(port: number): Promise<TcpConnection<object>> {
 *   return await connectTcp({ port }, () => ({}));
 * }
 * ```
 */
export interface TcpConnection<P extends Protocol> {
  /** The transport, to write and close; `transport.closed` tells when it is over. */
  transport: Transport;
  /** The protocol instance `protocolFactory` made. */
  protocol: P;
}

/**
 * Connects to `hostname:port` and runs the protocol `protocolFactory` makes
 * on the connection, as asyncio's `loop.create_connection` does.
 * `connectionMade` has been called when the promise resolves, after the
 * socket options were set (TCP_NODELAY is on unless `noDelay: false`).
 *
 * @example Send a line and print what comes back
 * ```ts
 * import { connectTcp, type Transport } from "@x/echo";
 *
 * async function ask(port: number): Promise<void> {
 *   const { transport } = await connectTcp({ port }, () => ({
 *     connectionMade(t: Transport) {
 *       t.write(new TextEncoder().encode("hello\n"));
 *       t.writeEof();
 *     },
 *     dataReceived(data: Uint8Array) {
 *       console.log(new TextDecoder().decode(data));
 *     },
 *   }));
 *   await transport.closed;
 * }
 * ```
 *
 * @throws {Deno.errors.ConnectionRefused} when nothing listens there; the message names the address.
 * @throws {Deno.errors.NotFound} when the host name does not resolve; the message names it.
 */
export async function connectTcp<P extends Protocol>(
  options: TcpConnectOptions,
  protocolFactory: () => P,
): Promise<TcpConnection<P>> {
  const { hostname = "127.0.0.1", port, path, tls, backend = "deno" } = options;
  if (path === undefined) checkAddress(hostname, port, 1);
  validateTransportOptions(options);
  validateSocketOptions(options);
  checkSendProxy(options.sendProxy);
  if (path !== undefined || tls !== undefined) checkPathAndTls(options);
  if (backend === "epoll") return await connectOnEpoll(hostname, port!, options, protocolFactory);
  if (backend !== "deno") {
    throw new TypeError(
      `Cannot connect with backend ${JSON.stringify(backend)}: use "deno" or "epoll"`,
    );
  }
  if (path !== undefined) {
    return runOnConn(await dialUnix(path), () => NO_SETUP, options, protocolFactory);
  }
  if (tls !== undefined) {
    return await connectOverTls(hostname, port!, tls, options, protocolFactory);
  }
  const conn = await dialTcp(hostname, port!);
  return runOnConn(conn, () => setUpConnection(conn, options), options, protocolFactory);
}

/**
 * Runs the protocol `protocolFactory` makes over the connected `conn`, set
 * up as `setUp` says (with what the TLS handshake settled, for TLS);
 * closes `conn` when either throws.
 */
function runOnConn<P extends Protocol>(
  conn: Deno.Conn,
  setUp: () => ConnectionSetup,
  options: TcpConnectOptions,
  protocolFactory: () => P,
  tls?: TlsInfo,
): TcpConnection<P> {
  let setup: ConnectionSetup;
  let protocol: P;
  try {
    setup = setUp();
    protocol = protocolFactory();
  } catch (error) {
    conn.close();
    throw error;
  }
  const driver = new ConnDriver(conn, setup, options.readBufferSize, tls);
  return { transport: startClient(driver, protocol, options), protocol };
}

/** Nothing to do per connection: a Unix socket has no TCP options. */
const NO_SETUP: ConnectionSetup = {
  noDelay: undefined,
  keepAlive: undefined,
  quickAck: false,
  perConnection: [],
};

/**
 * Checks `path` and `tls`, and what they rule out.
 *
 * @throws {TypeError} for a bad path, TLS options or a conflict.
 * @throws {Deno.errors.NotSupported} for `backend: "epoll"` with either.
 */
function checkPathAndTls(options: TcpConnectOptions): void {
  const { path, tls } = options;
  if (path !== undefined && (typeof path !== "string" || path === "" || path.includes("\0"))) {
    throw new TypeError(
      `Cannot connect to unix socket ${JSON.stringify(path)}: the path must be a non-empty ` +
        `string without NUL, such as "/tmp/echo.sock"`,
    );
  }
  if (tls !== undefined) validateTlsConnectOptions(tls);
  const what = path !== undefined ? `unix socket ${path}` : "a TLS server";
  if (path !== undefined && tls !== undefined) {
    throw new TypeError(`Cannot connect to ${what} with tls: Deno's TLS runs on TCP only`);
  }
  if (options.backend === "epoll") {
    throw new Deno.errors.NotSupported(
      `Cannot connect to ${what} on the epoll backend: it runs on Deno's own sockets only; ` +
        `use backend "deno" (the default)`,
    );
  }
  if (options.sendProxy !== undefined) {
    throw new TypeError(
      `Cannot send a PROXY header to ${what}: sendProxy is for plain TCP here; drop it`,
    );
  }
}

/** {@linkcode connectTcp} over TLS: the TCP connection, its options, then the handshake. */
async function connectOverTls<P extends Protocol>(
  hostname: string,
  port: number,
  tls: TlsConnectOptions,
  options: TcpConnectOptions,
  protocolFactory: () => P,
): Promise<TcpConnection<P>> {
  const tcp = await dialTcp(hostname, port);
  let setup: ConnectionSetup;
  try {
    setup = setUpConnection(tcp, options);
    // A TLS conn has no setNoDelay/setKeepAlive: Deno's fallbacks go on the TCP conn now.
    if (setup.noDelay !== undefined) tcp.setNoDelay(setup.noDelay);
    if (setup.keepAlive !== undefined) tcp.setKeepAlive(setup.keepAlive);
    setup = { ...setup, noDelay: undefined, keepAlive: undefined };
  } catch (error) {
    tcp.close();
    throw error;
  }
  const { conn, info } = await startClientTls(tcp, hostname, port, tls);
  return runOnConn(conn, () => setup, options, protocolFactory, info);
}

/** `Deno.connect` to a Unix socket, with errors that name the path. */
async function dialUnix(path: string): Promise<Deno.UnixConn> {
  try {
    return await Deno.connect({ transport: "unix", path });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(
        `Cannot connect to unix socket ${path}: no such file (is the server running?)`,
        { cause: error },
      );
    }
    if (error instanceof Deno.errors.ConnectionRefused) {
      throw new Deno.errors.ConnectionRefused(
        `Cannot connect to unix socket ${path}: connection refused (nothing listens there, ` +
          `or it is not a socket)`,
        { cause: error },
      );
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new Deno.errors.PermissionDenied(
        `Cannot connect to unix socket ${path}: permission denied (${error.message})`,
        { cause: error },
      );
    }
    throw error;
  }
}

/** Runs `protocol` on the connected `driver`, after the PROXY header `options` ask for. */
function startClient(driver: Driver, protocol: Protocol, options: TcpConnectOptions): Transport {
  const transport = new SocketTransport(driver, protocol, options);
  if (options.sendProxy !== undefined) {
    let header: Uint8Array;
    try {
      header = proxyHeaderFor(options.sendProxy, driver);
    } catch (error) {
      transport.abort();
      throw error;
    }
    transport.write(header);
  }
  transport.start();
  return transport;
}

/** The PROXY header to send: `sendProxy`'s, with this connection's addresses where it names none. */
function proxyHeaderFor(sendProxy: 1 | 2 | ProxyHeaderOptions, driver: Driver): Uint8Array {
  const options = typeof sendProxy === "number" ? { version: sendProxy } : sendProxy;
  if (options.command === "local") return encodeProxyHeader(options);
  // A plain TCP connection (checkPathAndTls): its addresses are Deno.NetAddr.
  const source = options.source ?? (driver.localAddr() as Deno.NetAddr | null) ?? undefined;
  return encodeProxyHeader({
    ...options,
    source,
    destination: options.destination ?? driver.peerAddr as Deno.NetAddr,
  });
}

/**
 * Checks `sendProxy` before connecting.
 *
 * @throws {TypeError} for a value that is neither 1, 2 nor header options.
 */
function checkSendProxy(sendProxy: unknown): void {
  if (sendProxy === undefined || sendProxy === 1 || sendProxy === 2) return;
  const version = (sendProxy as { version?: unknown } | null)?.version;
  if (typeof sendProxy !== "object" || (version !== 1 && version !== 2)) {
    throw new TypeError(
      `Cannot use sendProxy ${JSON.stringify(sendProxy)}: ` +
        `it must be 1, 2 or PROXY header options such as { version: 2 }`,
    );
  }
}

/** {@linkcode connectTcp} on the epoll backend. */
async function connectOnEpoll<P extends Protocol>(
  hostname: string,
  port: number,
  options: TcpConnectOptions,
  protocolFactory: () => P,
): Promise<TcpConnection<P>> {
  const poller = getPoller();
  if (typeof poller === "string") {
    throw new Deno.errors.NotSupported(
      `Cannot connect on the epoll backend here: ${poller}; use backend "deno"`,
    );
  }
  // A name is resolved first, off this thread (getaddrinfo through FFI would block it).
  const address = (await resolveHost("tcp", hostname, port)).hostname;
  const { fd, peer, setup } = await connectEpollSocket(poller, address, port, options);
  let protocol: P;
  try {
    protocol = protocolFactory();
  } catch (error) {
    poller.libc.symbols.close(fd);
    throw error;
  }
  const driver = new EpollDriver(fd, peer, poller, setup, options.readBufferSize);
  return { transport: startClient(driver, protocol, options), protocol };
}

/** `Deno.connect`, with errors that name the address. */
export async function dialTcp(hostname: string, port: number): Promise<Deno.TcpConn> {
  try {
    return await Deno.connect({ hostname, port, transport: "tcp" });
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionRefused) {
      throw new Deno.errors.ConnectionRefused(
        `Cannot connect to ${formatAddress({ transport: "tcp", hostname, port })}: ` +
          `connection refused (is a server listening there?)`,
        { cause: error },
      );
    }
    // Deno throws a plain Error that does not name the host.
    if (error instanceof Error && error.message.startsWith("failed to lookup address")) {
      throw new Deno.errors.NotFound(
        `Cannot resolve host ${JSON.stringify(hostname)}: ${error.message}; ` +
          `check the name, or use an IP address`,
        { cause: error },
      );
    }
    throw error;
  }
}
