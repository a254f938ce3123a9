/**
 * The one socket-options object used by servers and clients, checked up
 * front so a bad value fails before any socket is opened.
 *
 * @module
 */

import { checkBoolean, checkInteger } from "../_validate.ts";

/** The kernel's limits (Linux: MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT). */
export const LIMITS = {
  keepAliveIdle: [1, 32767],
  keepAliveInterval: [1, 32767],
  keepAliveCount: [1, 127],
  bufferSize: [1, 2 ** 30],
  backlog: [1, 65535],
} as const;

/**
 * TCP keep-alive timing: probe after `idle` seconds of silence, every
 * `interval` seconds, and give up after `count` unanswered probes.
 *
 * @example
 * ```ts
 * import type { KeepAliveOptions } from "@x/echo/tcp";
 *
 * const keepAlive: KeepAliveOptions = { idle: 1800, interval: 15, count: 5 };
 * ```
 */
export interface KeepAliveOptions {
  /** Seconds of silence before the first probe (TCP_KEEPIDLE), 1 to 32767. */
  idle?: number;
  /** Seconds between probes (TCP_KEEPINTVL), 1 to 32767. */
  interval?: number;
  /** Unanswered probes before the connection is dropped (TCP_KEEPCNT), 1 to 127. */
  count?: number;
}

/**
 * The socket options of one connection: what a client sets on its socket,
 * and what a server sets once on its listening socket for the kernel to pass
 * on to every accepted connection.
 *
 * @example
 * ```ts
 * import type { ConnectionSocketOptions } from "@x/echo/tcp";
 *
 * const options: ConnectionSocketOptions = { noDelay: true, keepAlive: { idle: 60 } };
 * ```
 */
export interface ConnectionSocketOptions {
  /**
   * SO_RCVBUF in bytes, 1 to 2^30 (Linux keeps and reports twice this, and
   * stops autotuning the buffer of a socket that sets it).
   */
  receiveBufferSize?: number;
  /** SO_SNDBUF in bytes, 1 to 2^30 (Linux keeps and reports twice this, and stops autotuning it). */
  sendBufferSize?: number;
  /** TCP_NODELAY: send small writes at once instead of waiting for an ACK. Default `true`. */
  noDelay?: boolean;
  /**
   * SO_KEEPALIVE, with optional timing (TCP_KEEPIDLE, TCP_KEEPINTVL,
   * TCP_KEEPCNT); `true` keeps the system's timing. Default: off.
   */
  keepAlive?: boolean | KeepAliveOptions;
  /**
   * TCP_QUICKACK (Linux): acknowledge received data at once. The kernel
   * drops it again on its own, so it is re-armed after every read.
   */
  quickAck?: boolean;
}

/**
 * Socket options of a server: those of its connections, plus those of the
 * listening socket itself.
 *
 * @example
 * ```ts
 * import type { SocketOptions } from "@x/echo";
 *
 * const options: SocketOptions = {
 *   backlog: 100,
 *   receiveBufferSize: 65536,
 *   sendBufferSize: 65536,
 *   noDelay: true,
 *   keepAlive: { idle: 1800, count: 5, interval: 15 },
 * };
 * ```
 */
export interface SocketOptions extends ConnectionSocketOptions {
  /**
   * SO_REUSEADDR: listen again at once on a port whose old connections are
   * in TIME_WAIT. On by default, as Deno binds: the epoll backend sets it
   * before its bind; on the deno backend, `false` clears it after Deno's.
   */
  reuseAddress?: boolean;
  /**
   * SO_REUSEPORT: let several servers listen on one port, the kernel
   * spreading connections between them. The epoll backend sets it before
   * its bind, with no flag; the deno backend needs Deno's `--unstable-net`.
   */
  reusePort?: boolean;
  /** The listen backlog: connections the kernel queues before they are accepted, 1 to 65535. */
  backlog?: number;
}

/**
 * Checks every option; throws an error naming the option, the value and the
 * allowed range.
 *
 * @throws {RangeError} for a number out of range; {TypeError} for a wrong type.
 */
export function validateSocketOptions(options: SocketOptions): void {
  const { backlog, receiveBufferSize, sendBufferSize, keepAlive } = options;
  for (const name of ["reuseAddress", "reusePort", "noDelay", "quickAck"] as const) {
    checkBoolean(name, options[name]);
  }
  if (backlog !== undefined) checkInteger("backlog", backlog, ...LIMITS.backlog);
  if (receiveBufferSize !== undefined) {
    checkInteger("receiveBufferSize", receiveBufferSize, ...LIMITS.bufferSize);
  }
  if (sendBufferSize !== undefined) {
    checkInteger("sendBufferSize", sendBufferSize, ...LIMITS.bufferSize);
  }
  if (keepAlive === undefined || typeof keepAlive === "boolean") return;
  if (typeof keepAlive !== "object" || keepAlive === null) {
    throw new TypeError(
      `Cannot use keepAlive ${JSON.stringify(keepAlive)}: ` +
        `it must be true, false or { idle, interval, count } in seconds`,
    );
  }
  const { idle, interval, count } = keepAlive;
  if (idle !== undefined) checkInteger("keepAlive.idle", idle, ...LIMITS.keepAliveIdle);
  if (interval !== undefined) {
    checkInteger("keepAlive.interval", interval, ...LIMITS.keepAliveInterval);
  }
  if (count !== undefined) checkInteger("keepAlive.count", count, ...LIMITS.keepAliveCount);
}

/**
 * The socket options of a UDP socket. `reuseAddress` is applied before the
 * bind; the buffer sizes after it, through FFI.
 *
 * @example
 * ```ts
 * import type { UdpSocketOptions } from "@x/echo/udp";
 *
 * const options: UdpSocketOptions = { receiveBufferSize: 1 << 20, sendBufferSize: 1 << 20 };
 * ```
 */
export interface UdpSocketOptions {
  /**
   * SO_REUSEADDR before the bind. Default `false`: on UDP it would let a
   * second server bind the same port without an error.
   */
  reuseAddress?: boolean;
  /**
   * SO_REUSEPORT before the bind: several sockets (of this process or of
   * others run by the same user) share the port, the kernel spreading
   * datagrams between them by source address. Default `false`. The epoll
   * backend only: Deno's and Node's datagram sockets cannot set it.
   */
  reusePort?: boolean;
  /**
   * SO_RCVBUF in bytes, 1 to 2^30: how many datagrams wait in the kernel
   * before it drops new ones (Linux keeps and reports twice this).
   */
  receiveBufferSize?: number;
  /** SO_SNDBUF in bytes, 1 to 2^30 (Linux keeps and reports twice this). */
  sendBufferSize?: number;
}

/**
 * Checks the options of a UDP socket; throws an error naming the option, the
 * value and the allowed range.
 *
 * @throws {RangeError} for a number out of range; {TypeError} for a wrong type.
 */
export function validateUdpSocketOptions(options: UdpSocketOptions): void {
  const { reuseAddress, receiveBufferSize, sendBufferSize } = options;
  checkBoolean("reuseAddress", reuseAddress);
  checkBoolean("reusePort", options.reusePort);
  if (receiveBufferSize !== undefined) {
    checkInteger("receiveBufferSize", receiveBufferSize, ...LIMITS.bufferSize);
  }
  if (sendBufferSize !== undefined) {
    checkInteger("sendBufferSize", sendBufferSize, ...LIMITS.bufferSize);
  }
}
