/**
 * UDP clients in the protocol-callback shape: a socket with a default remote
 * address, as asyncio's `create_datagram_endpoint(remote_addr=...)` makes.
 *
 * @module
 */

import type { DatagramProtocol, DatagramTransport } from "./protocol.ts";
import type { DatagramBackend } from "./socket.ts";
import { EpollDatagramSocket } from "./_epoll_socket.ts";
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
  /** `"deno"` (needs `--unstable-net`) or `"node"`; by default `"deno"` when available. */
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
  const remote = await resolveRemote(hostname, port);
  const [socket, protocol] = await openEndpoint({
    hostname: options.localHostname ?? (remote.hostname.includes(":") ? "::" : "0.0.0.0"),
    port: localPort,
    reuseAddress: options.reuseAddress,
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

/**
 * The remote as an IP address in the form datagrams' sources are reported
 * in: IPv6 in its short form, a name resolved once.
 */
export async function resolveRemote(hostname: string, port: number): Promise<Deno.NetAddr> {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(hostname)) return { transport: "udp", hostname, port };
  if (hostname.includes(":")) {
    const bare = hostname.replace(/^\[(.*)\]$/, "$1");
    let canonical: string;
    try {
      canonical = new URL(`udp://[${bare}]/`).hostname.slice(1, -1);
    } catch {
      throw new TypeError(
        `Cannot use hostname ${JSON.stringify(hostname)}: it is not an IPv6 address; ` +
          `use an address such as "::1", or a host name`,
      );
    }
    return { transport: "udp", hostname: canonical, port };
  }
  const { lookup } = await import("node:dns/promises");
  try {
    const { address } = await lookup(hostname);
    return await resolveRemote(address, port);
  } catch (error) {
    throw new Deno.errors.NotFound(
      `Cannot resolve host ${JSON.stringify(hostname)}: ${(error as Error).message}; ` +
        `check the name, or use an IP address`,
      { cause: error },
    );
  }
}
