/**
 * Accepting on a listener Deno opened (`Deno.listen`, `Deno.listenTls`, or
 * `Deno.listen` on a Unix socket), with `for await`: the `deno` backend, on
 * any system and without FFI. Each connection is served through a
 * {@linkcode ConnDriver}; a TLS connection once its handshake is over,
 * within a timeout (a failed or late one is closed and reported, never
 * served). Errors such as running out of descriptors are logged and retried
 * with a growing pause.
 *
 * @module
 */

import { ConnDriver } from "../drivers/_conn_driver.ts";
import type { Driver } from "../core/_transport.ts";
import type { ConnAddr, TlsInfo } from "../core/protocol.ts";
import { isLocalCancel, isPeerFault } from "../errors.ts";
import { formatAddress } from "../_address.ts";
import { getSocketOptions, type SocketOptionValues } from "../sockopt/read_back.ts";
import type { ConnectionSetup } from "../sockopt/_setup.ts";
import { AcceptBackoff, type Acceptor } from "./_acceptor.ts";
import { tcpLogger } from "../core/_log.ts";
import { removeOwnSocket, type UnixSocketFile } from "./_unix.ts";
import { shutDownSocket } from "../sockopt/_connection.ts";

/** What else a {@linkcode DenoAcceptor} does, besides accepting. */
export interface DenoAcceptorOptions {
  /** The largest read per connection. */
  readBufferSize?: number;
  /** A TLS listener: each connection's handshake must be over within this many milliseconds. */
  tlsHandshakeTimeout?: number;
  /** A TLS listener: the most handshakes under way at once; more are closed at once. */
  maxHandshakes?: number;
  /** A Unix socket's file, removed once the listener is closed (when it is still this one). */
  unixSocket?: UnixSocketFile;
}

/** An {@linkcode Acceptor} over a `Deno.Listener` (TCP, TLS or Unix). */
export class DenoAcceptor implements Acceptor {
  readonly addr: ConnAddr;
  readonly backend = "deno" as const;
  readonly #listener: Deno.Listener;
  readonly #setup: ConnectionSetup;
  readonly #readBufferSize: number | undefined;
  readonly #handshakeTimeout: number | undefined;
  readonly #maxHandshakes: number;
  readonly #unixSocket: UnixSocketFile | undefined;
  /** TLS connections whose handshake is under way: closed by a stop. */
  readonly #handshaking = new Set<Deno.Conn>();
  readonly #backoff = new AcceptBackoff();
  #stopping = false;
  #loop: Promise<void> = Promise.resolve();
  #pause: { timer: ReturnType<typeof setTimeout>; resolve: () => void } | undefined;

  /** Accepts on `listener`, each connection set up as `setup` says. */
  constructor(listener: Deno.Listener, setup: ConnectionSetup, options: DenoAcceptorOptions = {}) {
    this.#listener = listener;
    this.addr = listener.addr as ConnAddr;
    this.#setup = setup;
    this.#readBufferSize = options.readBufferSize;
    this.#handshakeTimeout = options.tlsHandshakeTimeout;
    this.#maxHandshakes = options.maxHandshakes ?? Infinity;
    this.#unixSocket = options.unixSocket;
  }

  start(
    onConnection: (driver: Driver) => void,
    onEnd: (error?: Error) => void,
    onTlsFailed?: (peer: ConnAddr, error: unknown) => void,
  ): void {
    this.#loop = this.#acceptLoop(onConnection, onEnd, onTlsFailed ?? (() => {}));
  }

  acceptQueued(): void {
    // Deno's accept always waits: what the kernel queued is reset by the close.
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    for (const conn of this.#handshaking) {
      shutDownSocket(conn.localAddr as Deno.NetAddr, conn.remoteAddr as Deno.NetAddr);
      closeQuietly(conn);
    }
    this.#handshaking.clear();
    if (this.#pause) {
      clearTimeout(this.#pause.timer);
      this.#pause.resolve();
    }
    await this.#loop;
    if (this.#unixSocket) removeOwnSocket(this.#unixSocket);
  }

  idle(): Promise<void> {
    return Promise.resolve();
  }

  getSocketOptions(): SocketOptionValues {
    if (this.addr.transport === "unix") {
      throw new Deno.errors.NotSupported(
        `Cannot read the socket options of the server on ${formatAddress(this.addr)}: ` +
          "a Unix socket has none of TCP's; read them on a TCP server",
      );
    }
    return getSocketOptions(this.#listener as Deno.TcpListener);
  }

  /**
   * Hands `conn` on. Whatever goes wrong there is that connection's: a throw
   * inside the `for await` would end the iterator, and close the listener.
   */
  #hand(conn: Deno.Conn, onConnection: (driver: Driver) => void, tls: TlsInfo | null): void {
    const driver = new ConnDriver(conn, this.#setup, this.#readBufferSize, tls);
    try {
      onConnection(driver);
    } catch (error) {
      tcpLogger.error("Serving {peer} failed: {error}", {
        peer: formatAddress(conn.remoteAddr),
        error,
      });
      driver.close();
    }
  }

  /** Hands `conn` on once its TLS handshake is over; closes it when the handshake fails or is late. */
  #handshake(
    conn: Deno.TlsConn,
    timeout: number,
    onConnection: (driver: Driver) => void,
    onTlsFailed: (peer: ConnAddr, error: unknown) => void,
  ): void {
    if (this.#handshaking.size >= this.#maxHandshakes) {
      // As many handshakes as allowed are under way (peers that connect and say nothing?).
      // Deno's close waits for the handshake it would start: shut the socket down first.
      shutDownSocket(conn.localAddr as Deno.NetAddr, conn.remoteAddr as Deno.NetAddr);
      closeQuietly(conn);
      onTlsFailed(
        conn.remoteAddr as ConnAddr,
        new Error(`Cannot start a TLS handshake: ${this.#maxHandshakes} are under way, the most`),
      );
      return;
    }
    this.#handshaking.add(conn);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Deno.errors.TimedOut(
              `Cannot complete the TLS handshake: none within ${timeout} ms`,
            ),
          ),
        timeout,
      );
    });
    Promise.race([conn.handshake(), late]).then((info) => {
      clearTimeout(timer);
      this.#handshaking.delete(conn);
      if (this.#stopping) return closeQuietly(conn);
      const tls: TlsInfo = { serverName: null, alpnProtocol: info.alpnProtocol, version: null };
      tcpLogger.debug("TLS with {peer}: ALPN {alpn}", {
        peer: formatAddress(conn.remoteAddr),
        alpn: tls.alpnProtocol ?? "none",
      });
      this.#hand(conn, onConnection, tls);
    }, (error) => {
      clearTimeout(timer);
      const wasPending = this.#handshaking.delete(conn);
      // Deno cannot cancel a handshake in flight: closing the conn leaves its socket open until
      // the client sends or leaves. Shutting the socket down ends it now (needs FFI).
      if (error instanceof Deno.errors.TimedOut) {
        shutDownSocket(conn.localAddr as Deno.NetAddr, conn.remoteAddr as Deno.NetAddr);
      }
      closeQuietly(conn);
      // A stop closed it: not the peer's failure.
      if (!this.#stopping && wasPending) onTlsFailed(conn.remoteAddr as ConnAddr, error);
    });
  }

  async #acceptLoop(
    onConnection: (driver: Driver) => void,
    onEnd: (error?: Error) => void,
    onTlsFailed: (peer: ConnAddr, error: unknown) => void,
  ): Promise<void> {
    const timeout = this.#handshakeTimeout;
    while (!this.#stopping) {
      try {
        // The iterator ends when the listener is closed and throws on other
        // accept errors, after which a fresh iterator carries on.
        for await (const conn of this.#listener) {
          this.#backoff.reset();
          if (timeout === undefined) this.#hand(conn, onConnection, null);
          else this.#handshake(conn as Deno.TlsConn, timeout, onConnection, onTlsFailed);
        }
      } catch (error) {
        if (this.#stopping || isLocalCancel(error)) break;
        // The peer gave up between the kernel's accept and Deno's look at it (a health
        // check that resets at once): that connection is gone, the listener is fine.
        if (isPeerFault(error)) {
          tcpLogger.debug("A connection to {address} ended before it was accepted: {error}", {
            address: formatAddress(this.addr),
            error,
          });
          continue;
        }
        const ms = this.#backoff.failed(formatAddress(this.addr), error);
        await new Promise<void>((resolve) => {
          this.#pause = { timer: setTimeout(resolve, ms), resolve };
        });
        this.#pause = undefined;
        continue;
      }
      break;
    }
    // The listener was closed under us: the server treats it as a shutdown.
    if (!this.#stopping) onEnd();
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}
