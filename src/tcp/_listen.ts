/**
 * Opening a server's listening socket on the backend it runs on: the
 * choice between epoll and Deno's sockets is made here, once, and the
 * server gets an {@linkcode Acceptor} either way. Errors name the address
 * and say what to try.
 *
 * @module
 */

import { formatAddress } from "../_address.ts";
import { hasUnstableNet } from "../_unstable.ts";
import { privilegeHint } from "../errors.ts";
import { tcpLogger } from "../core/_log.ts";
import { getPoller } from "../poll/_poller.ts";
import { type ConnectionSetup, setUpListener } from "../sockopt/_setup.ts";
import type { SocketOptions } from "../sockopt/socket_options.ts";
import type { Acceptor, AcceptorBackend } from "./_acceptor.ts";
import { DenoAcceptor } from "./_deno_acceptor.ts";
import { openEpollAcceptor } from "./_epoll_acceptor.ts";
import { DEFAULT_TLS_HANDSHAKE_TIMEOUT, listenTls } from "./_tls.ts";
import { listenUnix } from "./_unix.ts";
import type { TlsServerOptions } from "./server.ts";

/**
 * The most TLS handshakes under way at once: each holds a descriptor and the
 * handshake's state until it ends or times out, so peers that connect and
 * send nothing must not be able to take them all.
 */
const MAX_HANDSHAKES = 1024;

/** The backlog Deno uses when none is given, and so do we on both backends. */
export const DEFAULT_BACKLOG = 511;

/** What {@linkcode openAcceptor} needs: where, how, and the options of the socket. */
export interface ListenOptions extends SocketOptions {
  /** The address to listen on. */
  hostname: string;
  /** The port; 0 for any free one. */
  port: number;
  /** The backend to use; by default epoll where it can run, else deno. */
  backend?: AcceptorBackend;
  /** The largest read per connection. */
  readBufferSize?: number;
  /** A Unix socket to listen on instead of `hostname:port` (deno backend). */
  path?: string;
  /** TLS on every connection (deno backend). */
  tls?: TlsServerOptions;
  /** The server's connection limit: TLS handshakes under way count against it too. */
  maxConnections?: number;
}

/**
 * Listens as `options` say on the backend they ask for (by default epoll
 * where it can run: Linux with `--allow-ffi`; else Deno's sockets).
 *
 * @throws {Deno.errors.NotSupported} when `backend: "epoll"` cannot run
 * here, or `reusePort` is asked of the deno backend without `--unstable-net`.
 * @throws {Deno.errors.AddrInUse} (and the other errors of a bind) naming the address.
 */
export function openAcceptor(options: ListenOptions): Acceptor {
  const { hostname, port, backend } = options;
  const backlog = options.backlog ?? DEFAULT_BACKLOG;
  if (options.path !== undefined || options.tls !== undefined) return openDenoOnly(options);
  if (backend !== "deno") {
    const poller = getPoller();
    if (typeof poller !== "string") {
      try {
        return openEpollAcceptor(poller, hostname, port, backlog, options);
      } catch (error) {
        throw explainListenError(error, hostname, port);
      }
    }
    if (backend === "epoll") {
      throw new Deno.errors.NotSupported(
        `Cannot use the epoll backend here: ${poller}; ` +
          `use backend "deno" (or leave it unset) to serve through Deno's own sockets`,
      );
    }
    tcpLogger.debug("Serving through Deno's sockets: {reason}", { reason: poller });
  }
  const listener = listenTcp(hostname, port, options);
  try {
    return new DenoAcceptor(listener, setUpListener(listener, options), {
      readBufferSize: options.readBufferSize,
    });
  } catch (error) {
    listener.close();
    throw error;
  }
}

/** Nothing to do per connection: a Unix socket has no TCP options. */
const NO_SETUP: ConnectionSetup = {
  noDelay: undefined,
  keepAlive: undefined,
  quickAck: false,
  perConnection: [],
};

/**
 * A Unix socket or a TLS listener: Deno's own sockets only. The epoll
 * backend opens IPv4 and IPv6 sockets itself and has no TLS.
 *
 * @throws {Deno.errors.NotSupported} when `backend: "epoll"` is asked for.
 */
function openDenoOnly(options: ListenOptions): Acceptor {
  const { hostname, port, path, tls } = options;
  const what = path !== undefined ? "a Unix socket" : "TLS";
  if (options.backend === "epoll") {
    throw new Deno.errors.NotSupported(
      `Cannot serve ${what} on the epoll backend: it runs on Deno's own sockets only ` +
        `(backend "deno"); leave backend unset or use "deno"`,
    );
  }
  if (path !== undefined) {
    const { listener, file } = listenUnix(path);
    return new DenoAcceptor(listener, NO_SETUP, {
      readBufferSize: options.readBufferSize,
      unixSocket: file,
    });
  }
  const listener = listenTls(
    hostname,
    port,
    tls!,
    options,
    (error) => explainListenError(error, hostname, port),
  );
  try {
    // The socket under the TLS is TCP's: its options are set as on any TCP listener.
    const setup = setUpListener(listener as unknown as Deno.TcpListener, options);
    return new DenoAcceptor(listener, setup, {
      readBufferSize: options.readBufferSize,
      tlsHandshakeTimeout: tls!.handshakeTimeout ?? DEFAULT_TLS_HANDSHAKE_TIMEOUT,
      maxHandshakes: Math.min(options.maxConnections ?? MAX_HANDSHAKES, MAX_HANDSHAKES),
    });
  } catch (error) {
    listener.close();
    throw error;
  }
}

/**
 * `Deno.listen` with the backlog and `reusePort`, and errors that name the
 * address and say what to try.
 *
 * @throws {Deno.errors.NotSupported} for `reusePort` without `--unstable-net`.
 */
export function listenTcp(
  hostname: string,
  port: number,
  { backlog, reusePort }: Pick<SocketOptions, "backlog" | "reusePort"> = {},
): Deno.TcpListener {
  // Deno exits the whole process when reusePort is used without the flag: check first.
  if (reusePort && !hasUnstableNet()) {
    throw new Deno.errors.NotSupported(
      "Cannot use reusePort on the deno backend: it needs Deno's --unstable-net flag; run deno " +
        'with --unstable-net (or add "unstable": ["net"] to deno.json), or use the epoll ' +
        "backend (Linux, --allow-ffi), which needs no flag for it",
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
    throw explainListenError(error, hostname, port);
  }
}

/** `error` from a bind on `hostname:port`, with a message that says what to do about it. */
function explainListenError(error: unknown, hostname: string, port: number): unknown {
  const where = formatAddress({ transport: "tcp", hostname, port });
  if (error instanceof Deno.errors.AddrInUse) {
    return new Deno.errors.AddrInUse(
      `Cannot listen on ${where}: the address is already in use; ` +
        `stop the other server or choose another port (0 picks a free one)`,
      { cause: error },
    );
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return new Deno.errors.PermissionDenied(
      `Cannot listen on ${where}: permission denied` + privilegeHint(port, error),
      { cause: error },
    );
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return new Deno.errors.AddrNotAvailable(
      `Cannot listen on ${where}: no local interface has that address; ` +
        `use 127.0.0.1, 0.0.0.0 or an address of this machine`,
      { cause: error },
    );
  }
  // A name that does not resolve: Deno's message does not say which name.
  if (
    error instanceof Deno.errors.NotFound ||
    (error instanceof Error && /lookup address/.test(error.message))
  ) {
    const reason = (error as Error).message.replace(/^Cannot listen on [^:]*: /, "");
    return new Deno.errors.NotFound(
      `Cannot listen on ${where}: the host name does not resolve (${reason}); ` +
        `use an address such as 127.0.0.1 or ::1, or a name this machine resolves`,
      { cause: error },
    );
  }
  return error;
}
