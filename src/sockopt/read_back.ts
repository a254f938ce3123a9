/**
 * Reading a socket's options back from the kernel, as the tutorials' asserts
 * and debug logs do.
 *
 * @module
 */

import type { OptionName } from "../libc/_constants.ts";
import { findSocketFd, identify, type SocketIdentity } from "../sockets/_fd.ts";
import { type Libc, requireLibc } from "../libc/_libc.ts";
import { locateSocketFd } from "../sockets/_locate.ts";
import { getOption } from "./_options.ts";
import { formatAddress } from "../_address.ts";

/**
 * A socket's options as the kernel reports them. TCP-only options are absent
 * on UDP sockets, and `quickAck` where the system has no TCP_QUICKACK.
 * Linux reports buffer sizes doubled: it keeps twice what was asked for, for
 * its own bookkeeping.
 *
 * @example
 * ```ts
 * import type { SocketOptionValues } from "@x/echo/tcp";
 *
 * function describe(values: SocketOptionValues): string {
 *   return `rcvbuf ${values.receiveBufferSize}, keep-alive ${values.keepAlive}`;
 * }
 * ```
 */
export interface SocketOptionValues {
  /** SO_REUSEADDR. */
  reuseAddress: boolean;
  /** SO_REUSEPORT. */
  reusePort: boolean;
  /** SO_RCVBUF, in bytes. */
  receiveBufferSize: number;
  /** SO_SNDBUF, in bytes. */
  sendBufferSize: number;
  /** SO_KEEPALIVE. */
  keepAlive: boolean;
  /** TCP_NODELAY (TCP only). */
  noDelay?: boolean;
  /** TCP_KEEPIDLE in seconds (TCP only). */
  keepAliveIdle?: number;
  /** TCP_KEEPINTVL in seconds (TCP only). */
  keepAliveInterval?: number;
  /** TCP_KEEPCNT (TCP only). */
  keepAliveCount?: number;
  /** TCP_QUICKACK (TCP on Linux only). */
  quickAck?: boolean;
}

/** Reads every option of socket `fd`, a `transport` socket, from the kernel. */
export function readSocketOptions(
  libc: Libc,
  fd: number,
  transport: "tcp" | "udp",
): SocketOptionValues {
  const flag = (name: OptionName) => getOption(libc, fd, name) !== 0;
  const values: SocketOptionValues = {
    reuseAddress: flag("reuseAddress"),
    reusePort: flag("reusePort"),
    receiveBufferSize: getOption(libc, fd, "receiveBufferSize"),
    sendBufferSize: getOption(libc, fd, "sendBufferSize"),
    keepAlive: flag("keepAlive"),
  };
  if (transport === "tcp") {
    const has = (name: OptionName) => libc.constants.options[name] !== undefined;
    values.noDelay = flag("noDelay");
    values.keepAliveIdle = getOption(libc, fd, "keepAliveIdle");
    values.keepAliveInterval = getOption(libc, fd, "keepAliveInterval");
    values.keepAliveCount = getOption(libc, fd, "keepAliveCount");
    if (has("quickAck")) values.quickAck = flag("quickAck");
  }
  return values;
}

/**
 * Reads the options of a TCP connection or listener, or of a bound UDP
 * socket, back from the kernel with `getsockopt` (through FFI, so it needs
 * `--allow-ffi`). TCP-only values are absent for UDP.
 *
 * @example Check what a listener's accepted connections inherit
 * ```ts
 * import { getSocketOptions } from "@x/echo/tcp";
 *
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const values = getSocketOptions(listener);
 * console.log(`SO_RCVBUF is ${values.receiveBufferSize} bytes`);
 * ```
 *
 * @throws {Deno.errors.NotCapable} without `--allow-ffi`.
 * @throws {Deno.errors.NotSupported} on a system other than Linux or macOS.
 * @throws {Deno.errors.NotFound} when the socket is closed.
 */
export function getSocketOptions(
  socket: Deno.TcpConn | Deno.TcpListener | { readonly addr: Deno.Addr },
): SocketOptionValues {
  if (
    socket === null || typeof socket !== "object" || !("localAddr" in socket || "addr" in socket)
  ) {
    throw new TypeError(
      `Cannot read the socket options of ${String(socket)}: it must be a Deno.TcpConn, ` +
        `a Deno.TcpListener or a UDP socket (openDatagramSocket)`,
    );
  }
  return readSocketOptionsOf(identify(socket));
}

/**
 * Reads the options of the socket `identity` describes (a TCP socket, or a
 * UDP socket by its bound address).
 *
 * @throws {Deno.errors.NotCapable} without `--allow-ffi`.
 * @throws {Deno.errors.NotFound} when no open socket has that address.
 */
export function readSocketOptionsOf(identity: SocketIdentity): SocketOptionValues {
  const libc = requireLibc("read socket options");
  const fd = identity.remote ? locateSocketFd(libc, identity) : findSocketFd(libc, identity);
  if (fd === null) {
    const where = formatAddress(identity.local) +
      (identity.remote ? ` to ${formatAddress(identity.remote)}` : "");
    throw new Deno.errors.NotFound(
      `Cannot read socket options of ${identity.transport} ${where}: ` +
        `no open socket has that address (is it closed?)`,
    );
  }
  return readSocketOptions(libc, fd, identity.transport);
}
