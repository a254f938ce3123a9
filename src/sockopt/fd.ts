/**
 * Finds the file descriptor behind a Deno socket. Deno exposes none, so we
 * match `getsockname`/`getpeername` and the socket type against the socket's
 * addresses over the process's open descriptors: one pass over the fd table,
 * meant for once per listener, not per accepted connection.
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
 * Returns the descriptor of the socket `identity` describes, or `null` when
 * none matches.
 *
 * @throws {Deno.errors.NotCapable} without read access to the descriptor list.
 */
export function findSocketFd(libc: Libc, identity: SocketIdentity): number | null {
  const { constants } = libc;
  const wantedType = identity.transport === "tcp" ? constants.SOCK_STREAM : constants.SOCK_DGRAM;
  const scratch = new Uint8Array(SOCKADDR_SIZE);
  const length = new Uint32Array(1);
  const intValue = new Int32Array(1);
  for (const entry of Deno.readDirSync(constants.fdDirectory)) {
    const fd = Number(entry.name);
    if (!Number.isInteger(fd)) continue;
    if (!sameAddress(libc, "getsockname", fd, identity.local, scratch, length)) continue;
    length[0] = 4;
    const { level, name } = constants.soType;
    if (libc.symbols.getsockopt(fd, level, name, intValue, length) !== 0) continue;
    if (intValue[0] !== wantedType) continue;
    if (identity.remote) {
      if (!sameAddress(libc, "getpeername", fd, identity.remote, scratch, length)) continue;
    } else {
      // A listener or unconnected socket has no peer; accepted sockets share its local address.
      length[0] = SOCKADDR_SIZE;
      if (libc.symbols.getpeername(fd, scratch, length) === 0) continue;
    }
    return fd;
  }
  return null;
}

function sameAddress(
  libc: Libc,
  call: "getsockname" | "getpeername",
  fd: number,
  wanted: Deno.NetAddr,
  scratch: Uint8Array,
  length: Uint32Array,
): boolean {
  length[0] = SOCKADDR_SIZE;
  if (libc.symbols[call](fd, scratch, length) !== 0) return false;
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
