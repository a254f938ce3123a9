/**
 * UDP in full: datagram servers and clients with protocol callbacks (after
 * asyncio's `DatagramProtocol` and `DatagramTransport`), a request client
 * that retries lost datagrams, a bare datagram socket, the reflection guard's
 * settings, and the sizes and defaults they use. The root entry point
 * (`@x/echo`) re-exports the part most programs use.
 *
 * @example A datagram server that answers each datagram in upper case, asked by the request client
 * ```ts
 * import { connectUdpClient, type DatagramTransport, serveUdp } from "@x/echo/udp";
 *
 * await using server = await serveUdp({ port: 0 }, () => {
 *   let transport: DatagramTransport;
 *   return {
 *     connectionMade: (t) => void (transport = t),
 *     datagramReceived: (data, from) =>
 *       transport.send(data.map((b) => b >= 97 && b <= 122 ? b - 32 : b), from),
 *   };
 * });
 * await using client = await connectUdpClient({ port: server.addr.port });
 * const answer = await client.request(new TextEncoder().encode("ping"));
 * console.log(new TextDecoder().decode(answer)); // "PING"
 * ```
 *
 * @module
 */

export type {
  DatagramExtraInfo,
  DatagramExtraInfoName,
  DatagramProtocol,
  DatagramTransport,
} from "./protocol.ts";
export type { DatagramTransportOptions } from "./transport.ts";
export {
  type Datagram,
  type DatagramBackend,
  type DatagramBindOptions,
  type DatagramSocket,
  MAX_DATAGRAM_SIZE,
  MAX_DATAGRAM_SIZE_IPV6,
  openDatagramSocket,
} from "./socket.ts";
export { type DropCounts, FORBIDDEN_SOURCE_PORTS, type RateLimit } from "./guard.ts";
export {
  DEFAULT_UDP_SHUTDOWN_TIMEOUT,
  serveUdp,
  type UdpServer,
  type UdpServerCounters,
  type UdpServerOptions,
} from "./server.ts";
export { connectUdp, type UdpConnection, type UdpConnectOptions } from "./client.ts";
export {
  connectUdpClient,
  DEFAULT_REQUEST_RETRIES,
  DEFAULT_REQUEST_TIMEOUT,
  UDP_CLIENT_QUEUE_LIMIT,
  type UdpClient,
  type UdpRequestOptions,
} from "./request_client.ts";
export type { UdpSocketOptions } from "../sockopt/socket_options.ts";
