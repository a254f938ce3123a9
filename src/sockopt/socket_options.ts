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
 * ```ts ignore
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
 * Socket options, for servers (set once on the listening socket where the
 * kernel passes them on to accepted sockets) and clients.
 *
 * @example
 * ```ts ignore
 * const options: SocketOptions = {
 *   backlog: 100,
 *   receiveBufferSize: 65536,
 *   sendBufferSize: 65536,
 *   noDelay: true,
 *   keepAlive: { idle: 1800, count: 5, interval: 15 },
 * };
 * ```
 */
export interface SocketOptions {
  /** SO_REUSEADDR: listen again at once on a port that has connections in TIME_WAIT. */
  reuseAddress?: boolean;
  /** SO_REUSEPORT: let several servers listen on one port (needs `--unstable-net`). */
  reusePort?: boolean;
  /** The listen backlog: connections the kernel queues before they are accepted, 1 to 65535. */
  backlog?: number;
  /** SO_RCVBUF in bytes (Linux keeps and reports twice this). */
  receiveBufferSize?: number;
  /** SO_SNDBUF in bytes (Linux keeps and reports twice this). */
  sendBufferSize?: number;
  /** TCP_NODELAY: send small writes at once. */
  noDelay?: boolean;
  /** SO_KEEPALIVE, with optional timing; `true` uses the system's timing. */
  keepAlive?: boolean | KeepAliveOptions;
  /** TCP_QUICKACK: acknowledge at once (re-armed after each read, as the kernel drops it). */
  quickAck?: boolean;
}

function checkRange(name: string, value: unknown, [min, max]: readonly [number, number]): void {
  checkInteger(name, value, min, max);
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
  if (backlog !== undefined) checkRange("backlog", backlog, LIMITS.backlog);
  if (receiveBufferSize !== undefined) {
    checkRange("receiveBufferSize", receiveBufferSize, LIMITS.bufferSize);
  }
  if (sendBufferSize !== undefined) checkRange("sendBufferSize", sendBufferSize, LIMITS.bufferSize);
  if (keepAlive === undefined || typeof keepAlive === "boolean") return;
  if (typeof keepAlive !== "object" || keepAlive === null) {
    throw new TypeError(
      `Invalid keepAlive: ${JSON.stringify(keepAlive)}. ` +
        `Use true, false or { idle, interval, count } in seconds.`,
    );
  }
  const { idle, interval, count } = keepAlive;
  if (idle !== undefined) checkRange("keepAlive.idle", idle, LIMITS.keepAliveIdle);
  if (interval !== undefined) checkRange("keepAlive.interval", interval, LIMITS.keepAliveInterval);
  if (count !== undefined) checkRange("keepAlive.count", count, LIMITS.keepAliveCount);
}
