/**
 * Accepting for the epoll backend: a listening socket opened through libc
 * (so its descriptor is certain: two `reusePort` listeners in one process
 * are never confused), watched by the poller, and `accept4` taking each
 * waiting connection as a non-blocking descriptor served through an
 * {@linkcode EpollDriver}. Errors such as running out of descriptors are
 * logged and retried with a growing pause.
 *
 * @module
 */

import type { Driver } from "../core/_transport.ts";
import { EpollDriver } from "../drivers/_epoll_driver.ts";
import {
  EAGAIN,
  ECONNABORTED,
  EINTR,
  EMFILE,
  ENFILE,
  EPOLLIN,
  O_CLOEXEC,
  O_NONBLOCK,
  type PlatformConstants,
  platformConstants,
} from "../libc/_constants.ts";
import { type LinuxLibc, loadLibc } from "../libc/_libc.ts";
import type { Poller, PollTarget } from "../poll/_poller.ts";
import { parseSockaddr, SOCKADDR_SIZE } from "../sockets/_address.ts";
import { openListeningSocket } from "../sockets/_listener.ts";
import { readSocketOptions, type SocketOptionValues } from "../sockopt/read_back.ts";
import { type ConnectionSetup, setUpUnboundListener } from "../sockopt/_setup.ts";
import type { SocketOptions } from "../sockopt/socket_options.ts";
import { formatAddress } from "../_address.ts";
import { AcceptBackoff, type Acceptor } from "./_acceptor.ts";

/**
 * accept4 errors that concern one waiting connection, not the listener:
 * ECONNABORTED, EINTR, and what accept(2) says to treat like EAGAIN on
 * Linux (EPROTO, ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP,
 * ENETUNREACH, ENETDOWN, and EPERM from a firewall).
 */
const RETRY_ACCEPT = new Set([ECONNABORTED, EINTR, 71, 92, 112, 64, 113, 95, 101, 100, 1]);

/** Connections taken per readiness event, so one busy listener cannot starve the others. */
const ACCEPTS_PER_EVENT = 64;
/**
 * Descriptors held back while accepting and given up when `accept4` runs out:
 * Deno itself needs a few (it panics without them), so the server must
 * never take the last one. They are duplicates of the poller's epoll
 * descriptor, not of the listener: a duplicate of the listener would keep
 * it open (and in its `reusePort` group) should the worker that owns it die
 * before closing them, and those of the epoll instance are found and closed
 * with it (see `poll/_reclaim.ts`).
 */
const RESERVED_DESCRIPTORS = 8;

/**
 * Opens a listening socket on `hostname:port` for the epoll backend, with
 * `options` set on it before the bind, and an acceptor for it.
 *
 * @throws {Error} from the socket calls (the address in use, ...) or a
 * refused option; nothing is left open then.
 */
export function openEpollAcceptor(
  poller: Poller,
  hostname: string,
  port: number,
  backlog: number,
  options: SocketOptions & { readBufferSize?: number },
): EpollAcceptor {
  const libc = loadLibc() as LinuxLibc; // there whenever a poller is
  let setup: ConnectionSetup | undefined;
  const socket = openListeningSocket(libc, {
    hostname,
    port,
    backlog,
    configure: (fd) => {
      setup = setUpUnboundListener(libc, fd, { transport: "tcp", hostname, port }, options);
    },
  });
  return new EpollAcceptor(poller, socket.fd, socket.addr, setup!, options.readBufferSize);
}

/** An {@linkcode Acceptor} over a listening descriptor watched by the poller. */
export class EpollAcceptor implements Acceptor, PollTarget {
  readonly addr: Deno.NetAddr;
  readonly backend = "epoll" as const;
  readonly #poller: Poller;
  readonly #fd: number;
  readonly #setup: ConnectionSetup;
  readonly #readBufferSize: number | undefined;
  readonly #constants: PlatformConstants = platformConstants()!;
  readonly #peer = new Uint8Array(SOCKADDR_SIZE);
  readonly #peerLength = new Uint32Array(1);
  readonly #backoff = new AcceptBackoff();
  readonly #reserve: number[] = [];
  #onConnection: (driver: Driver) => void = () => {};
  #onEnd: (error?: Error) => void = () => {};
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;

  /** What every connection's local address is, unless the listener is bound to a wildcard. */
  readonly #local: Deno.NetAddr | null;

  /** Accepts on the listening socket `fd`, bound to `addr`. */
  constructor(
    poller: Poller,
    fd: number,
    addr: Deno.NetAddr,
    setup: ConnectionSetup,
    readBufferSize?: number,
  ) {
    this.#poller = poller;
    this.#fd = fd;
    this.addr = addr;
    // Bound to one address, every connection's local address is the listener's.
    this.#local = addr.hostname === "0.0.0.0" || addr.hostname === "::" ? null : addr;
    this.#setup = setup;
    this.#readBufferSize = readBufferSize;
  }

  start(onConnection: (driver: Driver) => void, onEnd: (error?: Error) => void): void {
    this.#onConnection = onConnection;
    this.#onEnd = onEnd;
    this.#fillReserve();
    this.#poller.add(this.#fd, this, EPOLLIN);
  }

  stop(): Promise<void> {
    if (!this.#stopped) {
      this.#stopped = true;
      clearTimeout(this.#timer);
      this.#poller.remove(this.#fd);
      this.#releaseReserve();
      this.#poller.libc.symbols.close(this.#fd);
    }
    return Promise.resolve();
  }

  idle(): Promise<void> {
    return this.#poller.whenIdle();
  }

  getSocketOptions(): SocketOptionValues {
    if (this.#stopped) {
      throw new Deno.errors.BadResource(
        `Cannot read the socket options of the listener on ${formatAddress(this.addr)}: ` +
          `it is closed`,
      );
    }
    const libc = loadLibc() as LinuxLibc;
    return readSocketOptions(libc, this.#fd, "tcp");
  }

  /** Holds the reserve (duplicates of the epoll descriptor); `false` when descriptors ran out. */
  #fillReserve(): boolean {
    const { dup } = this.#poller.libc.symbols;
    while (this.#reserve.length < RESERVED_DESCRIPTORS) {
      const fd = dup(this.#poller.fd);
      if (fd < 0) return false;
      this.#reserve.push(fd);
    }
    return true;
  }

  #releaseReserve(): void {
    const { close } = this.#poller.libc.symbols;
    for (const fd of this.#reserve) close(fd);
    this.#reserve.length = 0;
  }

  acceptQueued(): void {
    if (this.#stopped) return;
    // As many as a backlog holds at most; each batch stops at EAGAIN.
    for (let i = 0; i < 65536 / ACCEPTS_PER_EVENT && this.#acceptBatch(); i++);
  }

  /** Accepts what is waiting. */
  onEvents(): void {
    this.#acceptBatch();
  }

  /** Accepts up to a batch of waiting connections; `true` when the batch was full (more may wait). */
  #acceptBatch(): boolean {
    const { libc } = this.#poller;
    if (!this.#fillReserve()) {
      // Descriptors are short: take none, leave Deno what there is (errno read before the closes).
      const error = libc.error(libc.errno(), "dup the epoll descriptor");
      this.#releaseReserve();
      this.#pause(error);
      return false;
    }
    const { accept4 } = libc.linux;
    for (let i = 0; i < ACCEPTS_PER_EVENT && !this.#stopped; i++) {
      this.#peerLength[0] = SOCKADDR_SIZE;
      const fd = accept4(this.#fd, this.#peer, this.#peerLength, O_NONBLOCK | O_CLOEXEC);
      if (fd < 0) {
        const code = libc.errno();
        if (code === EAGAIN) return false;
        // Out of descriptors: give Deno its reserve back while we wait.
        if (code === EMFILE || code === ENFILE) {
          this.#releaseReserve();
          this.#pause(libc.error(code, "accept4"));
          return false;
        }
        // The peer gave up while waiting, a signal came, or (accept(2)) an error of the
        // new connection's network was passed on: take the next one. Anything else waits.
        if (RETRY_ACCEPT.has(code)) continue;
        this.#pause(libc.error(code, "accept4"));
        return false;
      }
      this.#backoff.reset();
      const address = parseSockaddr(this.#constants, this.#peer);
      const peer: Deno.NetAddr = { transport: "tcp", hostname: "", port: 0, ...address };
      this.#onConnection(
        new EpollDriver(fd, peer, this.#poller, this.#setup, this.#readBufferSize, this.#local),
      );
    }
    return !this.#stopped;
  }

  /** The poller failed for good: accepting is over. */
  onPollerError(error: Error): void {
    this.stop();
    this.#onEnd(error);
  }

  /** Stops watching the listener for a while after `error`, then watches it again. */
  #pause(error: Error): void {
    const ms = this.#backoff.failed(formatAddress(this.addr), error);
    try {
      this.#poller.modify(this.#fd, 0);
    } catch (failure) {
      return this.onPollerError(failure as Error);
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#stopped) return;
      try {
        this.#poller.modify(this.#fd, EPOLLIN);
      } catch (failure) {
        this.onPollerError(failure as Error);
      }
    }, ms);
  }
}
