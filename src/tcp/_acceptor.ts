/**
 * Where a server's connections come from: a listening socket and the way
 * it accepts. The server runs the same on every backend; only its acceptor
 * differs: `_deno_acceptor.ts` (`Deno.listen` and `for await`) or
 * `_epoll_acceptor.ts` (a socket opened through libc, `accept4` when the
 * poller says it is readable). Each accepted socket comes as a
 * {@linkcode Driver} not yet attached to a transport.
 *
 * @module
 */

import type { Driver } from "../core/_transport.ts";
import type { ConnAddr } from "../core/protocol.ts";
import type { SocketOptionValues } from "../sockopt/read_back.ts";
import { tcpLogger } from "../core/_log.ts";

/** How a TCP server does its I/O; see `TcpBackend` in `server.ts`. */
export type AcceptorBackend = "epoll" | "deno";

/** A listening socket that hands its connections to a server. */
export interface Acceptor {
  /** The bound address, with the real port when 0 was asked for (a Unix socket's path). */
  readonly addr: ConnAddr;
  /** Which backend accepts, reads and writes. */
  readonly backend: AcceptorBackend;
  /**
   * Starts accepting: each connection goes to `onConnection` as a driver,
   * which the server attaches to a transport, or closes to refuse it.
   * `onEnd` runs once if accepting ends on its own (the listener was closed
   * under it, or the poller failed), with the error when there is one.
   * `onTlsFailed` is told of each TLS handshake that failed or timed out
   * (that connection is closed, never handed on).
   */
  start(
    onConnection: (driver: Driver) => void,
    onEnd: (error?: Error) => void,
    onTlsFailed?: (peer: ConnAddr, error: unknown) => void,
  ): void;
  /**
   * Accepts, now, the connections the kernel has already queued, handing
   * each to `start`'s `onConnection`: a shutdown serves them rather than let
   * the close of the listener reset them (a load balancer handed them over
   * before it saw the server go). The deno backend has no accept that does
   * not wait, and accepts none.
   */
  acceptQueued(): void;
  /** Stops accepting and closes the listening socket; resolves when accepting has ended. */
  stop(): Promise<void>;
  /** Resolves once nothing the backend runs is pending (the epoll wait has ended). */
  idle(): Promise<void>;
  /**
   * The listening socket's options read back from the kernel.
   *
   * @throws {Error} when they cannot be read (no FFI, or it is closed).
   */
  getSocketOptions(): SocketOptionValues;
}

/** The longest pause after a failed accept, in milliseconds. */
const MAX_BACKOFF = 1000;

/**
 * The pause after failed accepts (such as running out of descriptors):
 * 10 ms, doubling up to a second, back to none after an accept succeeds.
 */
export class AcceptBackoff {
  #ms = 0;

  /** Logs `error` for the listener on `address` and returns how long to pause. */
  failed(address: string, error: unknown): number {
    this.#ms = Math.min(Math.max(this.#ms * 2, 10), MAX_BACKOFF);
    tcpLogger.error("Accept on {address} failed: {error}; retrying in {ms} ms", {
      address,
      error,
      ms: this.#ms,
    });
    return this.#ms;
  }

  /** An accept succeeded. */
  reset(): void {
    this.#ms = 0;
  }
}
