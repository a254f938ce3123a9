/**
 * TCP and UDP echo servers and clients for Deno, and the API shapes they
 * are built on: protocol callbacks (after asyncio's `Protocol`/`Transport`
 * and `DatagramProtocol`/`DatagramTransport`) and streams (after asyncio's
 * `StreamReader`/`StreamWriter`).
 *
 * This root entry point holds what most programs start with: the echo
 * servers, and the servers, clients and main types of each API. Each
 * concern has its own entry point with all of its names: `@x/echo/tcp`
 * (the protocol API, its options, defaults and socket options),
 * `@x/echo/streams`, `@x/echo/udp` and `@x/echo/echo` (the echo behaviours
 * as building blocks). The programs are `@x/echo/server`, `@x/echo/client`
 * and `@x/echo/bench`.
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

export {
  type EchoApi,
  type EchoMode,
  type EchoOptions,
  type EchoServerOptions,
  echoStreamHandler,
  serveEcho,
  serveUdpEcho,
  type UdpEchoServerOptions,
} from "./src/echo/mod.ts";
export {
  type BufferedProtocol,
  connectTcp,
  type Protocol,
  type ProtocolFactory,
  serveTcp,
  type SocketOptions,
  type TcpConnection,
  type TcpConnectOptions,
  type TcpServer,
  type TcpServerOptions,
  type Transport,
  TransportClosedError,
} from "./src/tcp/mod.ts";
export {
  connectTcpStreams,
  IncompleteReadError,
  LimitOverrunError,
  serveTcpStreams,
  type StreamConnection,
  type StreamConnectOptions,
  type StreamHandler,
  StreamReader,
  type StreamServerOptions,
  StreamWriter,
} from "./src/streams/mod.ts";
export {
  connectUdp,
  connectUdpClient,
  type DatagramProtocol,
  type DatagramTransport,
  serveUdp,
  type UdpClient,
  type UdpConnection,
  type UdpConnectOptions,
  type UdpServer,
  type UdpServerOptions,
} from "./src/udp/mod.ts";
