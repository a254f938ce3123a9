/**
 * The echo behaviours: `echo`, `once`, `prefix`, `until` and `info` over TCP
 * (as a protocol, a stream handler, or a whole server) and `echo`, `prefix`
 * and `info` over UDP, with their modes and defaults. Use them to put an echo beside
 * your own protocols, or behind your own servers. The root entry point
 * (`@x/echo`) re-exports the servers.
 *
 * @example An echo protocol and a prefixing stream handler on two servers
 * ```ts
 * import { serveTcp, serveTcpStreams } from "@x/echo";
 * import { echoProtocolFactory, echoStreamHandler } from "@x/echo/echo";
 *
 * const plain = serveTcp({ port: 0 }, echoProtocolFactory({ mode: "once" }));
 * const tagged = serveTcpStreams({ port: 0 }, echoStreamHandler({ prefix: "GOT:" }));
 * await Promise.all([plain.shutdown(), tagged.shutdown()]);
 * ```
 *
 * @module
 */

export {
  DEFAULT_PREFIX,
  DEFAULT_TERMINATOR,
  DEFAULT_UNTIL_LIMIT,
  ECHO_MODES,
  type EchoMode,
  type EchoOptions,
} from "./behavior.ts";
export { EchoProtocol, echoProtocolFactory } from "./protocol.ts";
export type { EchoInfo, EchoInfoAddress, EchoInfoOptions } from "./info.ts";
export { echoStreamHandler } from "./stream.ts";
export {
  type EchoApi,
  type EchoServer,
  type EchoServerCounters,
  type EchoServerOptions,
  serveEcho,
} from "./serve.ts";
export type {
  EchoFaultCounters,
  EchoFaults,
  UdpEchoFaultCounters,
  UdpEchoFaults,
} from "./faults.ts";
export {
  EchoDatagramProtocol,
  serveUdpEcho,
  UDP_ECHO_MODES,
  type UdpEchoMode,
  type UdpEchoOptions,
  type UdpEchoServer,
  type UdpEchoServerCounters,
  type UdpEchoServerOptions,
} from "./datagram.ts";
