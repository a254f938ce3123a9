/**
 * Finds the file descriptor behind a Deno socket. Deno exposes none, so we
 * match `getsockname`/`getpeername` and the socket type against the socket's
 * addresses over the process's open descriptors. {@linkcode findSocketFd} is
 * one pass over the fd table, meant for once per listener; connections are
 * found with a few probes by `locate.ts`.
 *
 * @module
 */

import type { Libc } from "./libc.ts";

const SOCKADDR_SIZE = 128;

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
 */
export function findSocketFd(libc: Libc, identity: SocketIdentity): number | null {
  for (const entry of Deno.readDirSync(libc.constants.fdDirectory)) {
    const fd = Number(entry.name);
    if (Number.isInteger(fd) && isSocket(libc, fd, identity)) return fd;
  }
  return null;
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
  const address = parseSockaddr(libc, scratch);
  return address !== null && address.port === wanted.port &&
    address.hostname === canonicalHost(wanted.hostname);
}

/** Decodes a `sockaddr_in`/`sockaddr_in6`; `null` for other families. */
export function parseSockaddr(
  libc: Libc,
  bytes: Uint8Array,
): { hostname: string; port: number } | null {
  const { AF_INET, AF_INET6, sockaddrHasLength } = libc.constants;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const family = sockaddrHasLength ? bytes[1] : view.getUint16(0, true);
  const port = view.getUint16(2, false);
  if (family === AF_INET) return { hostname: bytes.subarray(4, 8).join("."), port };
  if (family === AF_INET6) return { hostname: formatIpv6(bytes.subarray(8, 24)), port };
  return null;
}

/** Formats 16 bytes as RFC 5952 text, as Deno prints IPv6 addresses. */
export function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${bytes.subarray(12, 16).join(".")}`;
  }
  // The longest run of two or more zero groups becomes "::" (the first, on a tie).
  let bestStart = -1, bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = (from: number, to: number) =>
    groups.slice(from, to).map((g) => g.toString(16)).join(":");
  if (bestStart === -1) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}

/** Deno may print an IPv6 host with brackets or a zone; compare without them. */
function canonicalHost(hostname: string): string {
  return hostname.replace(/^\[|\]$/g, "").replace(/%.*$/, "").toLowerCase();
}
