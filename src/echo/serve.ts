/**
 * One call to run an echo server in either API shape.
 *
 * @module
 */

import { serveTcp, type TcpServer, type TcpServerCounters } from "../tcp/server.ts";
import type { ConnAddr } from "../core/protocol.ts";
import { serveTcpStreams, type StreamServerOptions } from "../streams/streams.ts";
import { resolveLimit } from "../streams/stream_reader.ts";
import type { EchoOptions } from "./behavior.ts";
import { echoProtocolFactoryCounting } from "./protocol.ts";
import { echoStreamHandlerCounting } from "./stream.ts";
import type { EchoFaultCounters } from "./faults.ts";
import { newFaultCounters, resolveEchoFaults } from "./_faults.ts";
import { moreCounters, type WithMoreCounters } from "../_more_counters.ts";

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
 * What a TCP echo server has done so far: the TCP server's counters, and
 * what its faults did when they are on.
 *
 * @example
 * ```ts
 * import type { EchoServerCounters } from "@x/echo/echo";
 *
 * const report = (c: EchoServerCounters) => `${c.accepted} accepted, ${c.faults?.resets ?? 0} reset`;
 * ```
 */
export interface EchoServerCounters extends TcpServerCounters {
  /** What the faults did; present when {@linkcode EchoOptions.faults} are on. */
  faults?: EchoFaultCounters;
}

/**
 * A running TCP echo server, as {@linkcode serveEcho} returns it: a
 * {@linkcode TcpServer} whose counters say what its faults did.
 *
 * @example
 * ```ts
 * import { type EchoServer, serveEcho } from "@x/echo/echo";
 *
 * const server: EchoServer = serveEcho({ port: 0, faults: { delay: 300 } });
 * console.log(server.counters.faults?.delayed); // 0
 * await server.shutdown();
 * ```
 */
export interface EchoServer<A extends ConnAddr = Deno.NetAddr> extends TcpServer<A> {
  /** A snapshot of the counters. */
  readonly counters: EchoServerCounters;
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
 * @example Answers 300 ms late, at most 10,000 bytes a second, reset after 4096 bytes
 * ```ts
 * import { serveEcho } from "@x/echo";
 *
 * const server = serveEcho({ port: 0, faults: { delay: 300, throttle: 10_000, resetAfter: 4096 } });
 * await server.shutdown();
 * ```
 *
 * @throws {RangeError} for an invalid option, before any socket is opened.
 */
export function serveEcho(options: EchoServerOptions & { path: string }): EchoServer<Deno.UnixAddr>;
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
export function serveEcho(options?: EchoServerOptions): EchoServer;
export function serveEcho(options: EchoServerOptions = {}): EchoServer<ConnAddr> {
  const { api = "protocol" } = options;
  resolveLimit(options); // Checked for either API, so a bad value is never silently ignored.
  const counters = newFaultCounters();
  let serverOptions: EchoServerOptions & WithMoreCounters = options;
  if (resolveEchoFaults(options.faults) !== null) {
    serverOptions = { ...options, [moreCounters]: () => ({ faults: { ...counters } }) };
  }
  switch (api) {
    case "protocol":
      return serveTcp(serverOptions, echoProtocolFactoryCounting(options, counters));
    case "stream":
      return serveTcpStreams(serverOptions, echoStreamHandlerCounting(options, counters));
    default:
      throw new RangeError(
        `Cannot use api ${JSON.stringify(api)}: it must be "protocol" or "stream"`,
      );
  }
}
