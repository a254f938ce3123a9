/**
 * The TCP protocol API in full, after asyncio's `Protocol` and `Transport`:
 * servers and clients that call your protocol's callbacks, the transport it
 * writes to, and the options, defaults and socket options that tune them.
 * The root entry point (`@x/echo`) re-exports the part most programs use.
 *
 * @example A protocol that answers each chunk in upper case
 * ```ts
 * import { serveTcp, type Transport } from "@x/echo/tcp";
 *
 * const server = serveTcp({ port: 0, highWaterMark: 256 * 1024 }, () => {
 *   let transport: Transport;
 *   return {
 *     connectionMade: (t) => void (transport = t),
 *     dataReceived: (data) => transport.write(data.map((b) => b >= 97 && b <= 122 ? b - 32 : b)),
 *   };
 * });
 * await server.shutdown();
 * ```
 *
 * @example The defaults a server starts with
 * ```ts
 * import { DEFAULT_HIGH_WATER_MARK, DEFAULT_MAX_BUFFERED, TCP_BACKENDS } from "@x/echo/tcp";
 *
 * console.log(DEFAULT_HIGH_WATER_MARK, DEFAULT_MAX_BUFFERED, TCP_BACKENDS);
 * ```
 *
 * @module
 */

export type {
  BufferedProtocol,
  ConnAddr,
  ExtraInfo,
  ExtraInfoName,
  Protocol,
  ProtocolFactory,
  TlsInfo,
  Transport,
} from "../core/protocol.ts";
export { DEFAULT_HIGH_WATER_MARK, type WaterMarks } from "../core/water_marks.ts";
export { DEFAULT_READ_BUFFER_SIZE, type TransportOptions } from "../core/options.ts";
export { DEFAULT_MAX_BUFFERED } from "../core/budget.ts";
export { TransportClosedError } from "../errors.ts";
export {
  DEFAULT_PROXY_TIMEOUT,
  DEFAULT_SHUTDOWN_TIMEOUT,
  type ProxyProtocolOptions,
  serveTcp,
  TCP_BACKENDS,
  type TcpBackend,
  type TcpServer,
  type TcpServerCounters,
  type TcpServerOptions,
  type TlsServerOptions,
} from "./server.ts";
export {
  connectTcp,
  type TcpConnection,
  type TcpConnectOptions,
  type TlsConnectOptions,
} from "./client.ts";
export type {
  ConnectionSocketOptions,
  KeepAliveOptions,
  SocketOptions,
} from "../sockopt/socket_options.ts";
export { getSocketOptions, type SocketOptionValues } from "../sockopt/read_back.ts";
