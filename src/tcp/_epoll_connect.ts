/**
 * A TCP client connection on the epoll backend: the socket opened and
 * connected through libc without blocking (`connect` says EINPROGRESS; the
 * poller says when the socket turns writable; SO_ERROR says how it ended),
 * then driven by an {@linkcode EpollDriver} like an accepted connection.
 *
 * @module
 */

import {
  EINPROGRESS,
  EINTR,
  EPOLLERR,
  EPOLLHUP,
  EPOLLOUT,
  SO_ERROR,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOL_SOCKET,
} from "../libc/_constants.ts";
import type { LinuxLibc } from "../libc/_libc.ts";
import type { Poller } from "../poll/_poller.ts";
import { encodeSockaddr, parseSockaddr } from "../sockets/_address.ts";
import { resolveAddress } from "../sockets/_listener.ts";
import { requireNetAccess } from "../sockets/_permission.ts";
import { type ConnectionSetup, setUpConnectedSocket } from "../sockopt/_setup.ts";
import type { SocketOptions } from "../sockopt/socket_options.ts";
import { formatAddress } from "../_address.ts";

/** A socket connected to its peer, with what its driver still has to set. */
export interface ConnectedSocket {
  fd: number;
  peer: Deno.NetAddr;
  setup: ConnectionSetup;
}

/**
 * Opens a non-blocking TCP socket, sets `options` on it and connects it to
 * `hostname`:`port`; resolves once the connection is made.
 *
 * @throws {Deno.errors.NotCapable} without net permission for the address.
 * @throws {Deno.errors.ConnectionRefused} when nothing listens there; the message names the address.
 * @throws {Deno.errors.NotFound} when the host name does not resolve.
 */
export async function connectEpollSocket(
  poller: Poller,
  hostname: string,
  port: number,
  options: SocketOptions,
): Promise<ConnectedSocket> {
  const libc = poller.libc as LinuxLibc;
  const where = formatAddress({ transport: "tcp", hostname, port });
  requireNetAccess("tcp", hostname, port, "connect to");
  const sockaddr = encodeSockaddr(libc.constants, hostname, port) ??
    resolveAddress(libc, hostname, port, "tcp");
  const peer: Deno.NetAddr = { transport: "tcp", ...parseSockaddr(libc.constants, sockaddr)! };
  const family = sockaddr[0] | (sockaddr[1] << 8);
  const { symbols } = libc;
  const fd = symbols.socket(family, libc.constants.SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw libc.error(libc.errno(), `open a socket to connect to ${where}`);
  try {
    // Before connecting: buffer sizes decide the window scale offered in the SYN.
    const setup = setUpConnectedSocket(libc, fd, peer, options);
    let code = symbols.connect(fd, sockaddr, sockaddr.length) === 0 ? 0 : libc.errno();
    // Interrupted, the connect goes on all the same (calling it again would say EALREADY).
    if (code === EINPROGRESS || code === EINTR) code = await connected(poller, fd);
    if (code !== 0) throw refused(libc, code, where);
    return { fd, peer, setup };
  } catch (error) {
    symbols.close(fd);
    throw error;
  }
}

/** Waits until the connect under way on `fd` ends; resolves to its errno (0: connected). */
function connected(poller: Poller, fd: number): Promise<number> {
  const libc = poller.libc as LinuxLibc;
  return new Promise((resolve, reject) => {
    poller.add(fd, {
      onEvents() {
        poller.remove(fd);
        const value = new Int32Array(1);
        const length = new Uint32Array([4]);
        if (libc.symbols.getsockopt(fd, SOL_SOCKET, SO_ERROR, value, length) !== 0) {
          resolve(libc.errno());
        } else {
          resolve(value[0]);
        }
      },
      onPollerError(error) {
        poller.remove(fd);
        reject(error);
      },
    }, EPOLLOUT | EPOLLERR | EPOLLHUP);
  });
}

/** The error for a failed connect, worded as `dialTcp` words Deno's. */
function refused(libc: LinuxLibc, code: number, where: string): Error {
  const error = libc.error(code, `connect to ${where}`);
  if (error instanceof Deno.errors.ConnectionRefused) {
    return new Deno.errors.ConnectionRefused(
      `Cannot connect to ${where}: connection refused (is a server listening there?)`,
      { cause: error },
    );
  }
  return error;
}
