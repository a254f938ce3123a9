/**
 * Accepting connections for the epoll backend: the listener Deno opened is
 * watched by the poller, and `accept4` takes each waiting connection as a
 * non-blocking descriptor. Errors such as running out of descriptors are
 * logged and retried with a growing pause, as the Deno backend does.
 *
 * @module
 */

import type { Poller, PollTarget } from "../poll/poller.ts";
import { EAGAIN, ECONNABORTED, EINTR, EPOLLIN, O_CLOEXEC, O_NONBLOCK } from "../poll/syscalls.ts";
import { isLibc, type Libc, loadLibc } from "../sockopt/libc.ts";
import { parseSockaddr } from "../sockopt/fd.ts";
import { tcpLogger } from "./_log.ts";

/** Connections taken per readiness event, so one busy listener cannot starve the others. */
const ACCEPTS_PER_EVENT = 64;
/**
 * Descriptors held back while accepting and given up when `accept4` runs out:
 * Deno itself needs a few (it panics without them), so the server must
 * never take the last one.
 */
const RESERVED_DESCRIPTORS = 8;
/** The longest pause after a failed accept, in milliseconds. */
const MAX_BACKOFF = 1000;

/** Takes new connections off a listening descriptor and hands them to `onAccept`. */
export class EpollAcceptor implements PollTarget {
  readonly #poller: Poller;
  readonly #fd: number;
  readonly #address: string;
  readonly #onAccept: (fd: number, peer: Deno.NetAddr) => void;
  readonly #peer = new Uint8Array(128);
  readonly #peerLength = new Uint32Array(1);
  #backoff = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  readonly #reserve: number[] = [];
  /** For decoding peer addresses; there whenever FFI is, which epoll needs. */
  readonly #sockopt: Libc | null;

  /** Prepares to accept on `fd`; `address` names the listener in log lines. */
  constructor(
    poller: Poller,
    fd: number,
    address: string,
    onAccept: (fd: number, peer: Deno.NetAddr) => void,
  ) {
    this.#poller = poller;
    this.#fd = fd;
    this.#address = address;
    this.#onAccept = onAccept;
    const libc = loadLibc();
    this.#sockopt = isLibc(libc) ? libc : null;
  }

  /** Starts watching the listener. */
  start(): void {
    this.#fillReserve();
    this.#poller.add(this.#fd, this, EPOLLIN);
  }

  /** Stops accepting; call before the listener is closed. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#poller.remove(this.#fd);
    this.#releaseReserve();
  }

  /** Holds the reserve (duplicates of the listener); `false` when descriptors ran out. */
  #fillReserve(): boolean {
    const { dup } = this.#poller.libc.symbols;
    while (this.#reserve.length < RESERVED_DESCRIPTORS) {
      const fd = dup(this.#fd);
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

  /** Accepts what is waiting. */
  onEvents(): void {
    const { symbols, errno, error } = this.#poller.libc;
    if (!this.#fillReserve()) {
      // Descriptors are short: take none, leave Deno what there is.
      this.#releaseReserve();
      return this.#pause(error(errno(), "dup"));
    }
    for (let i = 0; i < ACCEPTS_PER_EVENT && !this.#stopped; i++) {
      this.#peerLength[0] = this.#peer.length;
      const fd = symbols.accept4(this.#fd, this.#peer, this.#peerLength, O_NONBLOCK | O_CLOEXEC);
      if (fd < 0) {
        const code = errno();
        if (code === EAGAIN) return;
        // The peer gave up while waiting, or a signal came: take the next one.
        if (code === ECONNABORTED || code === EINTR) continue;
        // Out of descriptors (or memory): give Deno its reserve back while we wait.
        this.#releaseReserve();
        return this.#pause(error(code, "accept4"));
      }
      this.#backoff = 0;
      const address = this.#sockopt === null ? null : parseSockaddr(this.#sockopt, this.#peer);
      this.#onAccept(fd, { transport: "tcp", hostname: "", port: 0, ...address });
    }
  }

  /** Stops watching the listener for a while after `error`, then watches it again. */
  #pause(error: Error): void {
    this.#backoff = Math.min(Math.max(this.#backoff * 2, 10), MAX_BACKOFF);
    tcpLogger.error("Accept on {address} failed: {error}; retrying in {ms} ms", {
      address: this.#address,
      error,
      ms: this.#backoff,
    });
    this.#poller.modify(this.#fd, 0);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#stopped) this.#poller.modify(this.#fd, EPOLLIN);
    }, this.#backoff);
  }
}
