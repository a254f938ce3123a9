/**
 * Socket addresses in the C layout (`struct sockaddr_in`/`sockaddr_in6`):
 * decoding what `accept4`, `getsockname` and `getpeername` write, and
 * encoding what `bind` takes.
 *
 * @module
 */

import { isLibc, loadLibc } from "../libc/_libc.ts";
import type { PlatformConstants } from "../libc/_constants.ts";

/** Room for any `sockaddr` this module handles (a `sockaddr_storage`). */
export const SOCKADDR_SIZE = 128;

/** Decodes a `sockaddr_in`/`sockaddr_in6`; `null` for other families. */
export function parseSockaddr(
  constants: PlatformConstants,
  bytes: Uint8Array,
): { hostname: string; port: number } | null {
  const { AF_INET, AF_INET6, sockaddrHasLength } = constants;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const family = sockaddrHasLength ? bytes[1] : view.getUint16(0, true);
  const port = view.getUint16(2, false);
  if (family === AF_INET) return { hostname: bytes.subarray(4, 8).join("."), port };
  if (family === AF_INET6) return { hostname: formatIpv6(bytes.subarray(8, 24)), port };
  return null;
}

/**
 * Encodes `hostname` (an IPv4 or IPv6 address in text; no names) and `port`
 * as a `sockaddr`, or `null` when `hostname` is not an address literal.
 */
export function encodeSockaddr(
  constants: PlatformConstants,
  hostname: string,
  port: number,
): Uint8Array | null {
  const { AF_INET, AF_INET6, sockaddrHasLength } = constants;
  const host = canonicalHost(hostname);
  const v4 = parseIpv4(host);
  const v6 = v4 === null ? parseIpv6(host) : null;
  if (v4 === null && v6 === null) return null;
  const bytes = new Uint8Array(v4 !== null ? 16 : 28);
  const view = new DataView(bytes.buffer);
  if (sockaddrHasLength) {
    bytes[0] = bytes.length;
    bytes[1] = v4 !== null ? AF_INET : AF_INET6;
  } else {
    view.setUint16(0, v4 !== null ? AF_INET : AF_INET6, true);
  }
  view.setUint16(2, port, false);
  if (v4 !== null) bytes.set(v4, 4);
  else bytes.set(v6!, 8);
  return bytes;
}

/** The four bytes of a dotted IPv4 address, or `null`. */
export function parseIpv4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((part) => /^\d{1,3}$/.test(part) && +part <= 255)) {
    return null;
  }
  return new Uint8Array(parts.map(Number));
}

/** The sixteen bytes of an IPv6 address (with `::` and an IPv4 tail), or `null`. */
export function parseIpv6(text: string): Uint8Array | null {
  if (!text.includes(":")) return null;
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (half: string): number[] | null => {
    if (half === "") return [];
    const out: number[] = [];
    const parts = half.split(":");
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (i === parts.length - 1 && part.includes(".")) {
        const v4 = parseIpv4(part);
        if (v4 === null) return null;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else if (/^[0-9a-f]{1,4}$/.test(part)) {
        out.push(parseInt(part, 16));
      } else {
        return null;
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (head === null || tail === null) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...new Array(missing).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    bytes[2 * i] = group >> 8;
    bytes[2 * i + 1] = group & 0xff;
  });
  return bytes;
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
export function canonicalHost(hostname: string): string {
  return hostname.replace(/^\[|\]$/g, "").replace(/%.*$/, "").toLowerCase();
}

const addressBytes = new Uint8Array(SOCKADDR_SIZE);
const addressLength = new Uint32Array(1);

/**
 * The local address of the TCP socket on `fd`, or `null` when the kernel
 * cannot say (the socket is gone, or there is no FFI).
 */
export function localAddress(fd: number): Deno.NetAddr | null {
  const libc = loadLibc();
  if (!isLibc(libc)) return null;
  addressLength[0] = SOCKADDR_SIZE;
  if (libc.symbols.getsockname(fd, addressBytes, addressLength) !== 0) return null;
  const address = parseSockaddr(libc.constants, addressBytes);
  return address === null ? null : { transport: "tcp", ...address };
}
