/**
 * UDP clients in the protocol-callback shape: a socket with a default remote
 * address, as asyncio's `create_datagram_endpoint(remote_addr=...)` makes.
 *
 * @module
 */

import type { DatagramProtocol, DatagramTransport } from "./protocol.ts";
import type { DatagramBackend } from "./socket.ts";
import { EpollDatagramSocket } from "./_epoll_socket.ts";
import { resolveHost } from "../sockets/_resolve.ts";
import {
  type DatagramTransportOptions,
  openEndpoint,
  UdpTransport,
  validateDatagramTransportOptions,
} from "./transport.ts";
import { udpLogger } from "./_log.ts";
import { formatAddress } from "../_address.ts";
import { checkAddress, checkInteger } from "../_validate.ts";
import { type UdpSocketOptions, validateUdpSocketOptions } from "../sockopt/socket_options.ts";

/**
 * Where a UDP client sends to, where it binds, and its socket options.
 *
 * @example
 * ```ts
 * import type { UdpConnectOptions } from "@x/echo";
 *
 * const options: UdpConnectOptions = { hostname: "127.0.0.1", port: 8888 };
 * ```
 */
export interface UdpConnectOptions extends UdpSocketOptions, DatagramTransportOptions {
  /** The remote host: an IP address or a name (resolved once). Default `"127.0.0.1"`. */
  hostname?: string;
  /** The remote port. */
  port: number;
  /**
   * The local address to bind. Default `"0.0.0.0"` for an IPv4 remote,
   * `"::"` for an IPv6 one (the kernel picks the source address per route).
   */
  localHostname?: string;
  /** The local port; 0 picks a free one. Default 0. */
  localPort?: number;
  /**
   * Force a backend: `"epoll"` (Linux, with `--allow-ffi`), `"deno"` (needs
   * `--unstable-net`) or `"node"`; by default the first of them available.
   */
  backend?: DatagramBackend;
}

/**
 * A UDP client: its transport and the protocol that runs on it.
 *
 * @example
 * ```ts
 * import { connectUdp, type UdpConnection } from "@x/echo";
 *
 * async function open(port: number): Promise<UdpConnection<object>> {
 *   return await connectUdp({ port }, () => ({}));
 * }
 * ```
 */
export interface UdpConnection<P extends DatagramProtocol> {
  /** The transport: `send(data)` goes to the remote; `transport.closed` tells when it is over. */
  transport: DatagramTransport;
  /** The protocol instance `protocolFactory` made. */
  protocol: P;
}

/**
 * Opens a UDP socket whose default remote is `hostname:port` and runs the
 * protocol `protocolFactory` makes on it. `send(data)` without an address
 * goes to the remote, and only datagrams from the remote reach
 * `datagramReceived` (others are dropped, as a connected socket's kernel
 * would). `connectionMade` has been called when the promise resolves.
 *
 * UDP has no handshake: nothing tells whether a server listens until an
 * answer comes, or does not. On the `"epoll"` backend the socket is
 * connected to the remote (`connect(2)`), so when the remote host answers a
 * datagram with ICMP port unreachable (nothing listens there; loopback always
 * does) `errorReceived` gets a `Deno.errors.ConnectionRefused`; the other
 * backends say nothing. See `connectUdpClient` for requests with a timeout
 * and retries.
 *
 * @example Send a datagram and print the answer
 * ```ts
 * import { connectUdp, type DatagramTransport } from "@x/echo";
 *
 * async function ask(port: number): Promise<void> {
 *   const { transport } = await connectUdp({ port }, () => ({
 *     connectionMade(t: DatagramTransport) {
 *       t.send(new TextEncoder().encode("hello"));
 *     },
 *     datagramReceived(data: Uint8Array) {
 *       console.log(new TextDecoder().decode(data));
 *       transport.close();
 *     },
 *   }));
 *   await transport.closed;
 * }
 * ```
 *
 * @throws {Deno.errors.NotFound} when the host name does not resolve.
 * @throws {RangeError} for an option out of range, before any socket is opened.
 */
export async function connectUdp<P extends DatagramProtocol>(
  options: UdpConnectOptions,
  protocolFactory: () => P,
): Promise<UdpConnection<P>> {
  const { hostname = "127.0.0.1", port, localPort = 0 } = options;
  checkAddress(hostname, port, 1);
  checkInteger("localPort", localPort, 0, 65535);
  if (options.localHostname !== undefined) checkAddress(options.localHostname, 0, 0);
  validateUdpSocketOptions(options);
  validateDatagramTransportOptions(options);
  const remote = await resolveHost("udp", hostname, port);
  const [socket, protocol] = await openEndpoint({
    hostname: options.localHostname ?? (remote.hostname.includes(":") ? "::" : "0.0.0.0"),
    port: localPort,
    reuseAddress: options.reuseAddress,
    reusePort: options.reusePort,
    receiveBufferSize: options.receiveBufferSize,
    sendBufferSize: options.sendBufferSize,
    backend: options.backend,
  }, protocolFactory);
  if (socket instanceof EpollDatagramSocket) {
    // The kernel filters by source too, and tells of a refusal (nothing listens there).
    try {
      socket.connect(remote);
    } catch (error) {
      socket.close();
      await socket.closed;
      throw error;
    }
  }
  const transport = new UdpTransport(socket, protocol, options, {
    remote,
    accept: fromRemote(remote),
  });
  transport.start();
  return { transport, protocol };
}

/** A filter that lets only datagrams from `remote` through. */
function fromRemote(remote: Deno.NetAddr): (from: Deno.NetAddr) => boolean {
  const debug = udpLogger.isEnabledFor("debug");
  return (from) => {
    if (from.port === remote.port && from.hostname === remote.hostname) return true;
    if (debug) {
      udpLogger.debug("Ignored a datagram from {source}: this socket talks to {remote} only", {
        source: formatAddress(from),
        remote: formatAddress(remote),
      });
    }
    return false;
  };
}
