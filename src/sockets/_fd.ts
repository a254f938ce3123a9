/**
 * Finds the file descriptor behind a socket Deno opened. Deno exposes none,
 * so we match `getsockname`/`getpeername` and the socket type against the
 * socket's addresses over the process's open descriptors.
 * {@linkcode findSocketFd} is one pass over the whole fd table, meant for
 * once per listener; connections are found with a few probes by
 * `_locate.ts`.
 *
 * A connected socket is named for certain by its two addresses. A listener
 * or a bound UDP socket is not when another socket of the process has the
 * same address (two `reusePort` listeners on one port): then no descriptor
 * is returned, rather than a guess that may be the other socket. The epoll
 * backend never needs this: it opens its sockets itself.
 *
 * @module
 */

import type { Libc } from "../libc/_libc.ts";
import { canonicalHost, parseSockaddr, SOCKADDR_SIZE } from "./_address.ts";

/** What identifies the socket we look for. */
export interface SocketIdentity {
  /** `"tcp"` or `"udp"`. */
  transport: "tcp" | "udp";
  /** The local address (`localAddr`, or a listener's `addr`). */
  local: Deno.NetAddr;
  /** The peer of a connected socket; absent for listeners and unconnected datagram sockets. */
  remote?: Deno.NetAddr;
}

/**
 * A socket whose descriptor can be found: a TCP connection or listener, or
 * a bound UDP socket (anything with a UDP `addr`, such as `Deno.DatagramConn`).
 */
export type IdentifiableSocket =
  | Deno.TcpConn
  | Deno.TcpListener
  | { readonly addr: Deno.Addr };

/** The identity of a socket, to find its descriptor. */
export function identify(socket: IdentifiableSocket): SocketIdentity {
  if ("remoteAddr" in socket) {
    return { transport: "tcp", local: socket.localAddr, remote: socket.remoteAddr };
  }
  const local = socket.addr as Deno.NetAddr;
  return { transport: local.transport === "udp" ? "udp" : "tcp", local };
}

// Scratch space for the lookups, allocated once.
const scratch = new Uint8Array(SOCKADDR_SIZE);
const length = new Uint32Array(1);
const intValue = new Int32Array(1);

/**
 * Returns the descriptor of the socket `identity` describes, or `null` when
 * none matches: one pass over the whole descriptor table.
 *
 * @throws {Deno.errors.NotCapable} without read access to the descriptor list.
 * @throws {Error} when more than one socket matches (two listeners sharing a
 * port with `reusePort`): which one is meant cannot be known.
 */
export function findSocketFd(libc: Libc, identity: SocketIdentity): number | null {
  let found: number | null = null;
  for (const entry of Deno.readDirSync(libc.constants.fdDirectory)) {
    const fd = Number(entry.name);
    if (!Number.isInteger(fd) || !isSocket(libc, fd, identity)) continue;
    // A connected socket's two addresses name it alone: no need to look further.
    if (identity.remote) return fd;
    if (found !== null) {
      throw new Error(
        `Cannot tell which descriptor is the socket: ${found} and ${fd} (and perhaps more) ` +
          `are bound to that address in this process (reusePort)`,
      );
    }
    found = fd;
  }
  return found;
}

/** `true` when descriptor `fd` is the socket `identity` describes. */
export function isSocket(libc: Libc, fd: number, identity: SocketIdentity): boolean {
  const { constants } = libc;
  if (identity.remote) {
    // The peer is the most telling part of a connected socket: check it first.
    if (!sameAddress(libc, "getpeername", fd, identity.remote)) return false;
    if (!sameAddress(libc, "getsockname", fd, identity.local)) return false;
  } else {
    if (!sameAddress(libc, "getsockname", fd, identity.local)) return false;
    // A listener or unconnected socket has no peer; accepted sockets share its local address.
    length[0] = SOCKADDR_SIZE;
    if (libc.symbols.getpeername(fd, scratch, length) === 0) return false;
  }
  length[0] = 4;
  const { level, name } = constants.soType;
  if (libc.symbols.getsockopt(fd, level, name, intValue, length) !== 0) return false;
  const wantedType = identity.transport === "tcp" ? constants.SOCK_STREAM : constants.SOCK_DGRAM;
  return intValue[0] === wantedType;
}

function sameAddress(
  libc: Libc,
  call: "getsockname" | "getpeername",
  fd: number,
  wanted: Deno.NetAddr,
): boolean {
  length[0] = SOCKADDR_SIZE;
  if (libc.symbols[call](fd, scratch, length) !== 0) return false;
  // The port is at the same place in both families: compare it before decoding the host.
  if (((scratch[2] << 8) | scratch[3]) !== wanted.port) return false;
  const address = parseSockaddr(libc.constants, scratch);
  return address !== null && address.port === wanted.port &&
    address.hostname === canonicalHost(wanted.hostname);
}
