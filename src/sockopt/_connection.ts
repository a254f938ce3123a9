/**
 * The per-connection socket work a driver does: finding its connection's
 * descriptor (a few probes, not a scan), re-arming TCP_QUICKACK after reads,
 * reading the options back, and giving the descriptor up before closing.
 *
 * @module
 */

import { isLibc, loadLibc, requireLibc } from "../libc/_libc.ts";
import { setOption } from "./_options.ts";
import type { Setting } from "./_setup.ts";
import { identify } from "../sockets/_fd.ts";
import { locateSocketFd, releaseSocketFd } from "../sockets/_locate.ts";
import { readSocketOptions, type SocketOptionValues } from "./read_back.ts";

/**
 * The descriptor of `conn`, or -1 when it cannot be known (no FFI, or the
 * socket is gone). Call {@linkcode releaseConnectionFd} before closing `conn`.
 */
export function findConnectionFd(conn: Deno.TcpConn): number {
  const libc = loadLibc();
  if (!isLibc(libc)) return -1;
  try {
    return locateSocketFd(libc, identify(conn)) ?? -1;
  } catch {
    return -1; // The descriptor list cannot be read (no --allow-read): no per-connection work.
  }
}

/** Forgets `fd`, whose connection is about to close; the kernel will reuse the slot. */
export function releaseConnectionFd(fd: number): void {
  if (fd >= 0) releaseSocketFd(fd);
}

const ONE = new Int32Array([1]);
let quickAckCall: ((fd: number) => void) | undefined;

/**
 * Turns TCP_QUICKACK back on for `fd` after a read, since the kernel leaves
 * quick-ack mode on its own. Called on the read path: no allocation, and a
 * failure (the socket closing under us) is ignored, as the next read reports it.
 */
export function rearmQuickAck(fd: number): void {
  (quickAckCall ??= makeQuickAckCall())(fd);
}

function makeQuickAckCall(): (fd: number) => void {
  const libc = loadLibc();
  const code = isLibc(libc) ? libc.constants.options.quickAck : undefined;
  if (!isLibc(libc) || code === undefined) return () => {};
  const { setsockopt } = libc.symbols;
  const { level, name } = code;
  return (fd) => void setsockopt(fd, level, name, ONE, 4);
}

/**
 * Reads the options of the connection on `fd` back from the kernel.
 *
 * @throws {Deno.errors.NotCapable} without `--allow-ffi`; {Error} when `getsockopt` fails.
 */
export function readConnectionOptions(fd: number): SocketOptionValues {
  return readSocketOptions(requireLibc("read socket options"), fd, "tcp");
}

/**
 * Sets `settings` on the connection on `fd`: what its listener did not pass
 * on (see `notPassedOn`).
 *
 * @throws {Error} naming the option and the kernel's reason when `setsockopt` fails.
 */
export function setConnectionOptions(fd: number, settings: readonly Setting[]): void {
  const libc = loadLibc();
  if (!isLibc(libc)) return;
  for (const [name, , value] of settings) setOption(libc, fd, name, value);
}

/** `struct linger` {on, 0 seconds}: what makes a close send a reset. */
const LINGER_ZERO = new Int32Array([1, 0]);

/**
 * Sets SO_LINGER {on, 0} on `fd`, so that closing it sends a TCP reset
 * (RST) and drops what the kernel has not sent, instead of FIN. Returns
 * `false` when it cannot be set (no FFI, a system without the option, or
 * the socket is gone); the close then ends the connection with FIN.
 */
export function lingerZero(fd: number): boolean {
  const libc = loadLibc();
  if (fd < 0 || !isLibc(libc)) return false;
  const code = libc.constants.linger;
  if (code === undefined) return false;
  return libc.symbols.setsockopt(fd, code.level, code.name, LINGER_ZERO, 8) === 0;
}

/**
 * Resets the connection on `fd` now, for a socket whose owner closes it
 * with FIN first (a Deno conn: its close shuts the sending side down before
 * it closes the descriptor): SO_LINGER {on, 0}, then a fresh unconnected
 * socket is put in `fd`'s place with `dup2`, which closes the connection's
 * last descriptor (so the kernel sends RST), while the number stays taken
 * (by the fresh socket) until the owner closes it. Returns `false` when it
 * cannot (no FFI, or a call failed): the owner's close then sends FIN.
 */
export function resetThroughDescriptor(fd: number): boolean {
  const libc = loadLibc();
  if (fd < 0 || !isLibc(libc) || !lingerZero(fd)) return false;
  const { socket, dup2, close } = libc.symbols;
  const { AF_INET, SOCK_STREAM } = libc.constants;
  const stand = socket(AF_INET, SOCK_STREAM, 0);
  if (stand < 0) return false;
  const done = dup2(stand, fd) === fd;
  close(stand);
  return done;
}

/** `shutdown` of both directions. */
const SHUT_RDWR = 2;

/**
 * Shuts down both directions of the TCP socket with these addresses, so
 * that an operation Deno cannot cancel (a TLS handshake waiting for a
 * client that sends nothing: closing the conn leaves the socket open until
 * the operation ends) ends at once. `shutdown` leaves the descriptor open,
 * so it cannot touch a socket that took its number. Returns `false` where
 * it cannot be done (no FFI, the descriptor not found).
 */
export function shutDownSocket(local: Deno.NetAddr, remote: Deno.NetAddr): boolean {
  const libc = loadLibc();
  if (!isLibc(libc)) return false;
  let fd: number | null;
  try {
    fd = locateSocketFd(libc, { transport: "tcp", local, remote });
  } catch {
    return false;
  }
  if (fd === null) return false;
  const done = libc.symbols.shutdown(fd, SHUT_RDWR) === 0;
  releaseSocketFd(fd);
  return done;
}
