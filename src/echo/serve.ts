/**
 * One call to run an echo server in either API shape.
 *
 * @module
 */

import { serveTcp, type TcpServer } from "../tcp/server.ts";
import type { ConnAddr } from "../core/protocol.ts";
import { serveTcpStreams, type StreamServerOptions } from "../streams/streams.ts";
import { resolveLimit } from "../streams/stream_reader.ts";
import type { EchoOptions } from "./behavior.ts";
import { echoProtocolFactory } from "./protocol.ts";
import { echoStreamHandler } from "./stream.ts";

/**
 * The two API shapes an echo server can run on: protocol callbacks or
 * streams. Both give the same bytes; the protocol API is the faster.
 *
 * @example
 * ```ts
 * import { type EchoApi, serveEcho } from "@x/echo";
 *
 * const api: EchoApi = "stream";
 * const server = serveEcho({ port: 0, api });
 * await server.shutdown();
 * ```
 */
export type EchoApi = "protocol" | "stream";

/**
 * Options of {@linkcode serveEcho}: where to listen, which API, which echo mode.
 *
 * @example
 * ```ts
 * import type { EchoServerOptions } from "@x/echo";
 *
 * const options: EchoServerOptions = { port: 8888, api: "stream", mode: "prefix", prefix: "GOT:" };
 * ```
 */
export interface EchoServerOptions extends StreamServerOptions, EchoOptions {
  /** `"protocol"` (default) for protocol callbacks, `"stream"` for reader/writer. */
  api?: EchoApi;
}

/**
 * Starts a TCP echo server: on `hostname:port`, or on the Unix socket
 * `path` (this signature, whose `addr` is a `Deno.UnixAddr`); over TLS
 * with `tls` (see `TcpServerOptions`).
 *
 * @example On a Unix socket
 * ```ts ignore
 * import { serveEcho } from "@x/echo";
 *
 * await using server = serveEcho({ path: "/tmp/echo.sock", api: "stream" });
 * ```
 *
 * @example Continuous echo on port 8888 until Ctrl-C
 * ```ts ignore
 * import { serveEcho } from "@x/echo";
 *
 * const server = serveEcho({ hostname: "127.0.0.1", port: 8888 });
 * Deno.addSignalListener("SIGINT", () => server.shutdown());
 * await server.finished;
 * ```
 *
 * @throws {RangeError} for an invalid option, before any socket is opened.
 */
export function serveEcho(options: EchoServerOptions & { path: string }): TcpServer<Deno.UnixAddr>;
/**
 * Starts a TCP echo server on `hostname:port` (over TLS with `tls`); see the
 * first signature, which serves a Unix socket (`path`).
 *
 * @example
 * ```ts
 * import { serveEcho } from "@x/echo";
 *
 * await using server = serveEcho({ port: 0, mode: "prefix" });
 * console.log(server.addr.port > 0); // true
 * ```
 */
export function serveEcho(options?: EchoServerOptions): TcpServer;
export function serveEcho(options: EchoServerOptions = {}): TcpServer<ConnAddr> {
  const { api = "protocol" } = options;
  resolveLimit(options); // Checked for either API, so a bad value is never silently ignored.
  switch (api) {
    case "protocol":
      return serveTcp(options, echoProtocolFactory(options));
    case "stream":
      return serveTcpStreams(options, echoStreamHandler(options));
    default:
      throw new RangeError(
        `Cannot use api ${JSON.stringify(api)}: it must be "protocol" or "stream"`,
      );
  }
}
