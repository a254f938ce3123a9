/**
 * TCP echo servers and clients for Deno, and the two API shapes they are
 * built on: protocol callbacks (after asyncio's `Protocol`/`Transport`) and
 * streams (after asyncio's `StreamReader`/`StreamWriter`).
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
 * @module
 */

export type {
  ExtraInfo,
  ExtraInfoName,
  Protocol,
  ProtocolFactory,
  Transport,
} from "./src/tcp/protocol.ts";
export { DEFAULT_HIGH_WATER_MARK, type WaterMarks } from "./src/water_marks.ts";
export { DEFAULT_READ_BUFFER_SIZE, type TransportOptions } from "./src/tcp/transport.ts";
export { TransportClosedError } from "./src/errors.ts";
export {
  DEFAULT_SHUTDOWN_TIMEOUT,
  serveTcp,
  type TcpServer,
  type TcpServerOptions,
} from "./src/tcp/server.ts";
export { connectTcp, type TcpConnection, type TcpConnectOptions } from "./src/tcp/client.ts";
export type {
  ConnectionSocketOptions,
  KeepAliveOptions,
  SocketOptions,
} from "./src/sockopt/socket_options.ts";
export { getSocketOptions, type SocketOptionValues } from "./src/sockopt/read_back.ts";
export {
  DEFAULT_STREAM_LIMIT,
  IncompleteReadError,
  LimitOverrunError,
  StreamReader,
  type StreamReaderOptions,
} from "./src/tcp/stream_reader.ts";
export { type FlowControl, StreamWriter } from "./src/tcp/stream_writer.ts";
export {
  connectTcpStreams,
  serveTcpStreams,
  type StreamConnection,
  type StreamConnectOptions,
  type StreamHandler,
  type StreamServerOptions,
} from "./src/tcp/streams.ts";
export {
  DEFAULT_PREFIX,
  DEFAULT_TERMINATOR,
  DEFAULT_UNTIL_LIMIT,
  ECHO_MODES,
  type EchoMode,
  type EchoOptions,
  EchoSession,
  type EchoSink,
  type ResolvedEchoOptions,
  resolveEchoOptions,
} from "./src/echo/behavior.ts";
export { EchoProtocol, echoProtocolFactory } from "./src/echo/protocol.ts";
export { echoStreamHandler } from "./src/echo/stream.ts";
export { type EchoApi, type EchoServerOptions, serveEcho } from "./src/echo/serve.ts";
