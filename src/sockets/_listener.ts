/**
 * A listening TCP socket opened through libc (`socket`, `bind`, `listen`),
 * for the epoll backend: its descriptor is known because we made it, never
 * looked up by address, so two listeners sharing a port (`reusePort`, one
 * per worker) are told apart for certain. Linux only.
 *
 * @module
 */

import { SOCK_CLOEXEC, SOCK_NONBLOCK } from "../libc/_constants.ts";
import type { LinuxLibc } from "../libc/_libc.ts";
import { formatAddress } from "../_address.ts";
import { encodeSockaddr, parseSockaddr, SOCKADDR_SIZE } from "./_address.ts";
import { requireNetAccess } from "./_permission.ts";

/** A socket listening on `addr`; close `fd` when done with it. */
export interface ListeningSocket {
  /** The non-blocking, close-on-exec descriptor. */
  fd: number;
  /** The bound address, with the real port when 0 was asked for. */
  addr: Deno.NetAddr;
}

/** Where and how to listen. */
export interface ListenRequest {
  /** An address, or a name `getaddrinfo` resolves (the first address it gives is used). */
  hostname: string;
  /** The port; 0 for any free one. */
  port: number;
  /** The listen backlog. */
  backlog: number;
  /** Sets options on the socket before it is bound (SO_REUSEADDR and SO_REUSEPORT must be). */
  configure(fd: number): void;
}

const SOCK_STREAM = 1;
const AI_SOCKTYPE_OFFSET = 8;
const ADDRINFO_SIZE = 48;

/**
 * Opens, configures, binds and listens; on any failure the socket is closed
 * before the error is thrown, so nothing is left behind.
 *
 * @throws {Deno.errors.NotCapable} without net permission for the address.
 * @throws {Deno.errors.AddrInUse} (and the other `Deno.errors` of `bind`)
 * with a message naming the address.
 */
export function openListeningSocket(
  libc: LinuxLibc,
  request: ListenRequest,
): ListeningSocket {
  const { hostname, port, backlog } = request;
  const where = formatAddress({ transport: "tcp", hostname, port });
  requireNetAccess("tcp", hostname, port, "listen on");
  const sockaddr = encodeSockaddr(libc.constants, hostname, port) ??
    resolveAddress(libc, hostname, port, "tcp");
  const family = libc.constants.sockaddrHasLength ? sockaddr[1] : sockaddr[0] | (sockaddr[1] << 8);
  const { symbols } = libc;
  const fd = symbols.socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw libc.error(libc.errno(), `open a socket to listen on ${where}`);
  try {
    request.configure(fd);
    if (symbols.bind(fd, sockaddr, sockaddr.length) !== 0) {
      throw libc.error(libc.errno(), `listen on ${where}`);
    }
    if (symbols.listen(fd, backlog) !== 0) throw libc.error(libc.errno(), `listen on ${where}`);
    const bound = new Uint8Array(SOCKADDR_SIZE);
    const length = new Uint32Array([SOCKADDR_SIZE]);
    if (symbols.getsockname(fd, bound, length) !== 0) {
      throw libc.error(libc.errno(), `read the address of the socket listening on ${where}`);
    }
    const address = parseSockaddr(libc.constants, bound)!;
    return { fd, addr: { transport: "tcp", ...address } };
  } catch (error) {
    symbols.close(fd);
    throw error;
  }
}

/**
 * The first address `getaddrinfo` gives for `hostname`, as Rust's (and so
 * Deno's) `lookup_host` asks for it: any family, stream sockets for `tcp`,
 * datagram sockets for `udp`; as a `sockaddr` with `port`.
 *
 * @throws {Deno.errors.NotFound} when the name does not resolve.
 */
export function resolveAddress(
  libc: LinuxLibc,
  hostname: string,
  port: number,
  transport: "tcp" | "udp",
): Uint8Array {
  const { getaddrinfo, freeaddrinfo, gai_strerror } = libc.linux;
  const hints = new Uint8Array(ADDRINFO_SIZE);
  const type = transport === "tcp" ? SOCK_STREAM : libc.constants.SOCK_DGRAM;
  new DataView(hints.buffer).setInt32(AI_SOCKTYPE_OFFSET, type, true);
  const result = new BigUint64Array(1);
  const code = getaddrinfo(new TextEncoder().encode(`${hostname}\0`), null, hints, result);
  if (code !== 0) {
    const text = gai_strerror(code);
    const reason = text === null ? `error ${code}` : new Deno.UnsafePointerView(text).getCString();
    const action = transport === "tcp" ? "listen on" : "bind udp";
    throw new Deno.errors.NotFound(`Cannot ${action} ${hostname}: ${reason}`);
  }
  const list = Deno.UnsafePointer.create(result[0])!;
  try {
    // struct addrinfo on Linux: flags, family, socktype, protocol, addrlen (at 16), addr (at 24).
    const entry = new Deno.UnsafePointerView(list);
    const length = entry.getUint32(16);
    const address = entry.getPointer(24)!;
    const bytes = new Uint8Array(new Deno.UnsafePointerView(address).getArrayBuffer(length))
      .slice();
    new DataView(bytes.buffer).setUint16(2, port, false);
    return bytes;
  } finally {
    freeaddrinfo(list);
  }
}
