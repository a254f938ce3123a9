/**
 * The server program's listeners: one echo server per port and transport
 * the flags ask for, started together (TCP and UDP on one port share its
 * number, even when 0 picks it), each described by one line, and stopped
 * together. The same code runs in the main thread or in each worker.
 *
 * @module
 */

import { serveEcho } from "../echo/serve.ts";
import { resolveEchoOptions } from "../echo/behavior.ts";
import { serveUdpEcho } from "../echo/datagram.ts";
import { formatAddress } from "../_address.ts";
import { DEFAULT_MAX_BUFFERED } from "../core/budget.ts";
import { DEFAULT_BACKLOG } from "../tcp/_listen.ts";
import { DEFAULT_PROXY_TIMEOUT, type TcpServer } from "../tcp/server.ts";
import type { UdpServer } from "../udp/server.ts";
import type { EchoServerOptions } from "../echo/serve.ts";
import type { UdpEchoServerOptions } from "../echo/datagram.ts";
import {
  describeSocketOptions,
  describeUdpSocketOptions,
  effectiveBacklog,
} from "./_socket_flags.ts";
import { describeFaults } from "./_fault_flags.ts";
import { sharedConnections, type WithSharedConnections } from "../tcp/_shared_limit.ts";

/** What the listeners are made of: a subset of the parsed command. */
export interface ListenerPlan {
  /** The transports to serve on each port, in order. */
  transports: ("tcp" | "udp")[];
  /** The ports, in order; 0 picks a free one. */
  ports: number[];
  /** The TCP servers' options (their port is replaced). */
  options: EchoServerOptions;
  /** The UDP servers' options (their port is replaced). */
  udpOptions: UdpEchoServerOptions;
  /**
   * With workers and `maxConnections`: for each port, the count of its TCP
   * connections open in all workers, which the limit holds (see
   * `tcp/_shared_limit.ts`).
   */
  connectionCounters?: Int32Array[];
}

/** A started listener and the line that announces it. */
export interface Listener {
  /** The server. */
  server: TcpServer | UdpServer;
  /** Its transport. */
  transport: "tcp" | "udp";
  /** What it serves and how, for the startup line (after "listening on ADDRESS"). */
  description: string;
}

/** Tries at binding UDP on the port TCP was given for port 0, before giving up. */
const SAME_PORT_TRIES = 10;

/**
 * Starts a server for each port and transport of `plan`, in order, all
 * with SO_REUSEPORT when `reusePort`. On a failure, those already started
 * are stopped and the error is thrown.
 */
export async function startListeners(plan: ListenerPlan, reusePort: boolean): Promise<Listener[]> {
  const started: Listener[] = [];
  try {
    for (const [i, port] of plan.ports.entries()) {
      started.push(...await startOnPort(plan, port, reusePort, plan.connectionCounters?.[i]));
    }
  } catch (error) {
    await Promise.all(started.map(({ server }) => server.shutdown()));
    throw error;
  }
  return started;
}

/** The listeners of one port: TCP first, then UDP on the port TCP got. */
async function startOnPort(
  plan: ListenerPlan,
  port: number,
  reusePort: boolean,
  connections: Int32Array | undefined,
): Promise<Listener[]> {
  const { transports } = plan;
  if (!transports.includes("tcp")) return [await startUdp(plan.udpOptions, port, reusePort)];
  const options: EchoServerOptions & WithSharedConnections = connections === undefined
    ? plan.options
    : { ...plan.options, [sharedConnections]: connections };
  for (let tries = 1;; tries++) {
    const tcp = startTcp(options, port, reusePort);
    if (!transports.includes("udp")) return [tcp];
    try {
      return [tcp, await startUdp(plan.udpOptions, tcp.server.addr.port, reusePort)];
    } catch (error) {
      await tcp.server.shutdown();
      // Port 0 gave TCP a number some UDP socket has: ask for another.
      if (port !== 0 || !(error instanceof Deno.errors.AddrInUse) || tries === SAME_PORT_TRIES) {
        throw error;
      }
    }
  }
}

function startTcp(options: EchoServerOptions, port: number, reusePort: boolean): Listener {
  const tcpOptions = { ...options, port, ...(reusePort ? { reusePort } : {}) };
  const server = serveEcho(tcpOptions);
  const { mode } = resolveEchoOptions(tcpOptions); // valid: serveEcho accepted them
  const { path, tls } = tcpOptions;
  // A Unix socket has none of TCP's options to read back.
  const kind = path !== undefined
    ? "unix"
    : tls === undefined
    ? "tcp"
    : `tcp, TLS${tls.alpnProtocols ? ` (ALPN ${tls.alpnProtocols.join(",")})` : ""}`;
  const description = `${kind}, ${tcpOptions.api} API, ${mode} mode, ${server.backend} backend; ` +
    (path !== undefined ? "" : optionsInForce(server, tcpOptions)) +
    limitsOf(tcpOptions).slice(path !== undefined ? 2 : 0) +
    describeFaults(tcpOptions.faults);
  return { server, transport: "tcp", description };
}

async function startUdp(
  options: UdpEchoServerOptions,
  port: number,
  reusePort: boolean,
): Promise<Listener> {
  const udpOptions = { ...options, port, ...(reusePort ? { reusePort } : {}) };
  const server = await serveUdpEcho(udpOptions);
  return { server, transport: "udp", description: describeUdp(server, udpOptions) };
}

/** The limits on the startup line: the buffer budget, and the others when set. */
function limitsOf(options: EchoServerOptions): string {
  const { maxConnections, idleTimeout, maxBuffered = DEFAULT_MAX_BUFFERED } = options;
  const parts = [`max ${maxBuffered} bytes buffered`];
  if (maxConnections !== undefined) parts.push(`max ${maxConnections} connections`);
  if (idleTimeout !== undefined) parts.push(`idle timeout ${idleTimeout / 1000}s`);
  const { mode, untilLimit } = resolveEchoOptions(options);
  if (mode === "until") parts.push(`until limit ${untilLimit} bytes`);
  const proxy = options.proxyProtocol;
  if (proxy) {
    const { timeout = DEFAULT_PROXY_TIMEOUT, trusted } = proxy === true ? {} : proxy;
    const from = trusted === undefined ? "" : ` from ${[trusted].flat().join(",")}`;
    parts.push(`PROXY protocol v1/v2 within ${timeout / 1000}s${from}`);
  }
  return `; ${parts.join(", ")}`;
}

/** The UDP part of the startup line: mode, backend, options read back, safety. */
function describeUdp(server: UdpServer, options: UdpEchoServerOptions): string {
  const { mode } = resolveEchoOptions({ mode: options.mode, prefix: options.prefix });
  const backend = server.backend === "epoll"
    ? "epoll"
    : server.backend === "deno"
    ? "Deno.listenDatagram"
    : "node:dgram";
  let socket: string;
  try {
    socket = describeUdpSocketOptions(server.getSocketOptions());
  } catch (error) {
    socket = `socket options not read back: ${(error as Error).message}`;
  }
  const limit = options.rateLimit ? `, rate limit ${options.rateLimit.perSecond}/s per source` : "";
  return `udp, ${mode} mode, ${backend}; ${socket}; reflection guard${limit}` +
    describeFaults(options.faults);
}

/** The socket options read back from the listener, or why they cannot be. */
function optionsInForce(server: TcpServer, options: EchoServerOptions): string {
  const backlog = effectiveBacklog(options.backlog ?? DEFAULT_BACKLOG);
  try {
    return describeSocketOptions(server.getSocketOptions(), backlog, options.quickAck === true);
  } catch (error) {
    return `backlog ${backlog}; other socket options not read back: ${(error as Error).message}`;
  }
}

/** The startup line of one listener. */
export function listeningLine(addr: Deno.Addr, description: string): string {
  return `@x/echo server listening on ${formatAddress(addr)} (${description})`;
}
