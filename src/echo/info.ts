/**
 * `info` mode: who-am-I answers. Each connection is first answered with one
 * JSON line saying what the server saw of it (the client's address, from a
 * PROXY header where the server takes them; the local address; the host
 * name; the worker; the transport; for TLS what the handshake settled), and
 * then echoes as usual. Over UDP, each datagram is answered with such a line
 * instead of its echo. Kubernetes' agnhost answers `clientip` and
 * `hostname` the same way, to test what a Service or a load balancer does to
 * the path.
 *
 * @module
 */

import type { ConnAddr, Transport } from "../core/protocol.ts";

/**
 * One address in an {@linkcode EchoInfo} line: an IP address and port, or
 * a Unix socket's path (`null` for a client's socket, which has none).
 *
 * @example
 * ```ts
 * import type { EchoInfoAddress } from "@x/echo/echo";
 *
 * const text = (a: EchoInfoAddress) => "path" in a ? a.path : `${a.address}:${a.port}`;
 * ```
 */
export type EchoInfoAddress = { address: string; port: number } | { path: string | null };

/**
 * The JSON line `info` mode answers with: one per TCP connection (before
 * the echo), one per UDP datagram (instead of the echo).
 *
 * @example Read the line a server sent first
 * ```ts
 * import type { EchoInfo } from "@x/echo/echo";
 *
 * const info: EchoInfo = JSON.parse('{"transport":"tcp","client":{"address":"127.0.0.7",' +
 *   '"port":40000},"server":{"address":"127.0.0.1","port":8888},"proxy":null,"tls":null,' +
 *   '"hostname":"box","worker":null}');
 * console.log(info.client); // { address: "127.0.0.7", port: 40000 }
 * ```
 */
export interface EchoInfo {
  /** `"tcp"`, `"udp"` or `"unix"`. */
  transport: "tcp" | "udp" | "unix";
  /** The client: the source a PROXY header named, where the server takes them; else the peer. */
  client: EchoInfoAddress | null;
  /**
   * The address the connection came to on this host; for a datagram, the
   * address the server's socket is bound to (`0.0.0.0` for all of them).
   */
  server: EchoInfoAddress | null;
  /** The proxy that sent a PROXY header (its own address, and the header's version), or `null`. */
  proxy: { address: string; port: number; version: 1 | 2 } | null;
  /** What a TLS handshake settled, or `null` without TLS (see `TlsInfo` for what Deno reports). */
  tls: { serverName: string | null; alpnProtocol: string | null; version: string | null } | null;
  /** This host's name. */
  hostname: string;
  /** The worker that served it (`--workers`), or `null` without workers. */
  worker: number | null;
  /** UDP only: the size of the datagram answered. */
  bytes?: number;
}

/**
 * What `info` mode puts in every line, the same for all connections of a
 * server: its host's name and worker.
 *
 * @example
 * ```ts
 * import type { EchoInfoOptions } from "@x/echo/echo";
 *
 * const options: EchoInfoOptions = { worker: 2 };
 * ```
 */
export interface EchoInfoOptions {
  /** The worker index to report. Default `null` (no workers). */
  worker?: number | null;
  /** The host name to report. Default: `Deno.hostname()`, or `$HOSTNAME`, or `"unknown"`. */
  hostname?: string;
}

/** {@linkcode EchoInfoOptions} resolved, once per server. */
export interface ResolvedEchoInfo {
  hostname: string;
  worker: number | null;
}

const encoder = new TextEncoder();

/** Fills in the defaults of `options` (the host name is read once, here). */
export function resolveEchoInfo(options: EchoInfoOptions = {}): ResolvedEchoInfo {
  const { worker = null } = options;
  if (worker !== null && (!Number.isInteger(worker) || worker < 0)) {
    throw new RangeError(
      `Cannot use info.worker ${JSON.stringify(worker)}: it must be a whole number from 0`,
    );
  }
  return { hostname: options.hostname ?? hostName(), worker };
}

/** The first line of a TCP connection in `info` mode: what `transport` says of it. */
export function connectionInfoLine(transport: Transport, info: ResolvedEchoInfo): Uint8Array {
  const peer = transport.getExtraInfo("peername");
  const proxyHeader = transport.getExtraInfo("proxyHeader");
  const proxyPeer = transport.getExtraInfo("proxyPeername");
  let server: ConnAddr | null = null;
  try {
    server = transport.getExtraInfo("sockname");
  } catch {
    // Closed already: the line says what can still be known.
  }
  const tls = transport.getExtraInfo("tls");
  const line: EchoInfo = {
    transport: "path" in peer ? "unix" : "tcp",
    client: infoAddress(peer),
    server: server === null ? null : infoAddress(server),
    proxy: proxyHeader === null || proxyPeer === null || "path" in proxyPeer
      ? null
      : { address: proxyPeer.hostname, port: proxyPeer.port, version: proxyHeader.version },
    tls: tls === null
      ? null
      : { serverName: tls.serverName, alpnProtocol: tls.alpnProtocol, version: tls.version },
    hostname: info.hostname,
    worker: info.worker,
  };
  return encoder.encode(JSON.stringify(line) + "\n");
}

/** The answer to a UDP datagram of `bytes` bytes from `from`, to `server`, in `info` mode. */
export function datagramInfoLine(
  from: Deno.NetAddr,
  server: Deno.NetAddr,
  bytes: number,
  info: ResolvedEchoInfo,
): Uint8Array {
  const line: EchoInfo = {
    transport: "udp",
    client: infoAddress(from),
    server: infoAddress(server),
    proxy: null,
    tls: null,
    hostname: info.hostname,
    worker: info.worker,
    bytes,
  };
  return encoder.encode(JSON.stringify(line) + "\n");
}

function infoAddress(addr: ConnAddr): EchoInfoAddress {
  return "path" in addr ? { path: addr.path } : { address: addr.hostname, port: addr.port };
}

/** This host's name, with what permissions allow (asked first: never a prompt). */
function hostName(): string {
  if (granted({ name: "sys", kind: "hostname" })) return Deno.hostname();
  if (granted({ name: "env", variable: "HOSTNAME" })) return Deno.env.get("HOSTNAME") ?? "unknown";
  return "unknown";
}

function granted(descriptor: Deno.PermissionDescriptor): boolean {
  try {
    return Deno.permissions.querySync(descriptor).state === "granted";
  } catch {
    return false;
  }
}
