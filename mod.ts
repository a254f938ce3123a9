/**
 * TCP and UDP echo servers and clients for Deno, and the API shapes they
 * are built on: protocol callbacks (after asyncio's `Protocol`/`Transport`
 * and `DatagramProtocol`/`DatagramTransport`) and streams (after asyncio's
 * `StreamReader`/`StreamWriter`).
 *
 * @example An echo server in one call
 * ```ts
 * import { serveEcho } from "@x/echo";
 *
 * const server = serveEcho({ hostname: "127.0.0.1", port: 0, mode: "prefix", prefix: "GOT:" });
 * console.log(`echo on port ${server.addr.port}`);
 * await server.shutdown();
 * ```
 *
 * @example Your own protocol
 * ```ts
 * import { serveTcp, type Transport } from "@x/echo";
 *
 * const server = serveTcp({ port: 0 }, () => {
 *   let transport: Transport;
 *   return {
 *     connectionMade: (t) => void (transport = t),
 *     dataReceived: (data) => transport.write(data),
 *   };
 * });
 * await server.shutdown();
 * ```
 *
 * @example Stream style
 * ```ts
 * import { serveTcpStreams } from "@x/echo";
 *
 * const server = serveTcpStreams({ port: 0 }, async (reader, writer) => {
 *   const line = await reader.readLine();
 *   if (line) writer.write(line);
 * });
 * await server.shutdown();
 * ```
 *
 * @example UDP: an echo server, and a client that retries lost datagrams
 * ```ts
 * import { connectUdpClient, serveUdpEcho } from "@x/echo";
 *
 * await using server = await serveUdpEcho({ port: 0 });
 * await using client = await connectUdpClient({ port: server.addr.port });
 * const answer = await client.request(new TextEncoder().encode("ping"), { retries: 3 });
 * console.log(new TextDecoder().decode(answer)); // "ping"
 * ```
 *
 * @module
 */

export type {
  BufferedProtocol,
  ExtraInfo,
  ExtraInfoName,
  Protocol,
  ProtocolFactory,
  Transport,
} from "./src/core/protocol.ts";
export { DEFAULT_HIGH_WATER_MARK, type WaterMarks } from "./src/core/water_marks.ts";
export { DEFAULT_READ_BUFFER_SIZE, type TransportOptions } from "./src/core/options.ts";
export { TransportClosedError } from "./src/errors.ts";
export { DEFAULT_MAX_BUFFERED } from "./src/core/budget.ts";
export {
  DEFAULT_SHUTDOWN_TIMEOUT,
  serveTcp,
  TCP_BACKENDS,
  type TcpBackend,
  type TcpServer,
  type TcpServerCounters,
  type TcpServerOptions,
} from "./src/tcp/server.ts";
export { connectTcp, type TcpConnection, type TcpConnectOptions } from "./src/tcp/client.ts";
export type {
  ConnectionSocketOptions,
  KeepAliveOptions,
  SocketOptions,
  UdpSocketOptions,
} from "./src/sockopt/socket_options.ts";
export { getSocketOptions, type SocketOptionValues } from "./src/sockopt/read_back.ts";
export {
  DEFAULT_STREAM_LIMIT,
  IncompleteReadError,
  LimitOverrunError,
  StreamReader,
  type StreamReaderOptions,
} from "./src/streams/stream_reader.ts";
export { type FlowControl, StreamWriter } from "./src/streams/stream_writer.ts";
export {
  connectTcpStreams,
  serveTcpStreams,
  type StreamConnection,
  type StreamConnectOptions,
  type StreamHandler,
  type StreamServerOptions,
} from "./src/streams/streams.ts";
export {
  DEFAULT_PREFIX,
  DEFAULT_TERMINATOR,
  DEFAULT_UNTIL_LIMIT,
  ECHO_MODES,
  type EchoMode,
  type EchoOptions,
  EchoSession,
  type EchoSessionHooks,
  type EchoSink,
  type ResolvedEchoOptions,
  resolveEchoOptions,
} from "./src/echo/behavior.ts";
export { EchoProtocol, echoProtocolFactory } from "./src/echo/protocol.ts";
export { echoStreamHandler } from "./src/echo/stream.ts";
export { type EchoApi, type EchoServerOptions, serveEcho } from "./src/echo/serve.ts";
export type {
  DatagramExtraInfo,
  DatagramExtraInfoName,
  DatagramProtocol,
  DatagramTransport,
} from "./src/udp/protocol.ts";
export type { DatagramTransportOptions } from "./src/udp/transport.ts";
export {
  type Datagram,
  type DatagramBackend,
  type DatagramBindOptions,
  type DatagramSocket,
  MAX_DATAGRAM_SIZE,
  MAX_DATAGRAM_SIZE_IPV6,
  openDatagramSocket,
} from "./src/udp/socket.ts";
export { type DropCounts, FORBIDDEN_SOURCE_PORTS, type RateLimit } from "./src/udp/guard.ts";
export {
  DEFAULT_UDP_SHUTDOWN_TIMEOUT,
  serveUdp,
  type UdpServer,
  type UdpServerCounters,
  type UdpServerOptions,
} from "./src/udp/server.ts";
export { connectUdp, type UdpConnection, type UdpConnectOptions } from "./src/udp/client.ts";
export {
  connectUdpClient,
  DEFAULT_REQUEST_RETRIES,
  DEFAULT_REQUEST_TIMEOUT,
  UDP_CLIENT_QUEUE_LIMIT,
  type UdpClient,
  type UdpRequestOptions,
} from "./src/udp/request_client.ts";
export {
  EchoDatagramProtocol,
  resolveUdpEchoPrefix,
  serveUdpEcho,
  UDP_ECHO_MODES,
  type UdpEchoMode,
  type UdpEchoOptions,
  type UdpEchoServerOptions,
} from "./src/echo/datagram.ts";
