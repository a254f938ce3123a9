/**
 * A bound UDP socket on one of two backends: `Deno.listenDatagram` when Deno
 * runs with `--unstable-net`, `node:dgram` otherwise (so
 * `deno run -A jsr:@x/echo/server` serves UDP without the flag). Both behave
 * the same: datagrams in with their source address (`receive`, or async
 * iteration), datagrams out, close.
 *
 * @module
 */

import { formatAddress } from "../_address.ts";
import { privilegeHint } from "../errors.ts";
import { hasUnstableNet } from "../_unstable.ts";
import { checkAddress } from "../_validate.ts";
import { type UdpSocketOptions, validateUdpSocketOptions } from "../sockopt/socket_options.ts";
import { setUpDatagramSocket } from "../sockopt/_setup.ts";
import { udpLogger } from "./_log.ts";
import { getPoller, type Poller } from "../poll/_poller.ts";
import { datagramLibc, EpollDatagramSocket } from "./_epoll_socket.ts";

/**
 * Which implementation a UDP socket runs on: `"epoll"` drives the socket
 * through FFI on Linux's epoll (`recvmmsg`/`sendmmsg` batches; needs
 * `--allow-ffi`), `"deno"` is `Deno.listenDatagram` (needs
 * `--unstable-net`), `"node"` is `node:dgram`. By default the first that
 * is available, in that order.
 *
 * @example
 * ```ts
 * import { type DatagramBackend } from "@x/echo/udp";
 * import { serveUdpEcho } from "@x/echo";
 *
 * const backend: DatagramBackend = "listenDatagram" in Deno ? "deno" : "node";
 * const server = await serveUdpEcho({ port: 0, backend });
 * await server.shutdown();
 * ```
 */
export type DatagramBackend = "epoll" | "deno" | "node";

/**
 * The largest UDP payload over IPv4: 65,535 − 8 (UDP header) − 20 (IP header).
 *
 * @example
 * ```ts
 * import { MAX_DATAGRAM_SIZE } from "@x/echo/udp";
 *
 * const fits = (data: Uint8Array) => data.length <= MAX_DATAGRAM_SIZE; // 65,507
 * ```
 */
export const MAX_DATAGRAM_SIZE = 65_507;
/**
 * The largest UDP payload over IPv6 (without jumbograms): 65,535 − 8 (UDP header).
 *
 * @example
 * ```ts
 * import { MAX_DATAGRAM_SIZE, MAX_DATAGRAM_SIZE_IPV6 } from "@x/echo/udp";
 *
 * const limit = (host: string) => host.includes(":") ? MAX_DATAGRAM_SIZE_IPV6 : MAX_DATAGRAM_SIZE;
 * ```
 */
export const MAX_DATAGRAM_SIZE_IPV6 = 65_527;

/**
 * Where and how to bind a datagram socket, and its socket options.
 *
 * @example
 * ```ts
 * import type { DatagramBindOptions } from "@x/echo/udp";
 *
 * const options: DatagramBindOptions = { hostname: "::1", port: 0, receiveBufferSize: 1 << 20 };
 * ```
 */
export interface DatagramBindOptions extends UdpSocketOptions {
  /** The local address. Default `"127.0.0.1"`. */
  hostname?: string;
  /** The local port; 0 picks a free one. Default 0. */
  port?: number;
  /** Force a backend; by default `"epoll"` when available, else `"deno"`, else `"node"`. */
  backend?: DatagramBackend;
}

/**
 * One datagram received: a view of the data, valid until the next receive,
 * and its source.
 *
 * @example
 * ```ts
 * import type { Datagram } from "@x/echo/udp";
 *
 * const describe = ([data, from]: Datagram) => `${data.length} bytes from port ${from.port}`;
 * ```
 */
export type Datagram = [data: Uint8Array, from: Deno.NetAddr];

/**
 * A bound UDP socket, the endpoint under the datagram protocol API; see
 * {@linkcode openDatagramSocket}. Iterating it with `for await` yields each
 * datagram until the socket is closed.
 *
 * @example
 * ```ts
 * import { type DatagramSocket, openDatagramSocket } from "@x/echo/udp";
 *
 * async function echoForever(socket: DatagramSocket): Promise<void> {
 *   for await (const [data, from] of socket) await socket.send(data, from);
 * }
 * ```
 */
export interface DatagramSocket extends AsyncIterable<Datagram>, AsyncDisposable {
  /** The bound address, with the real port when 0 was asked for. */
  readonly addr: Deno.NetAddr;
  /** The implementation in use. */
  readonly backend: DatagramBackend;
  /**
   * The buffer `receive` reuses (`deno` backend), so a caller can tell a
   * view of it from other data; `null` when every datagram is fresh (`node`).
   */
  readonly receiveBuffer: ArrayBufferLike | null;
  /**
   * Datagrams dropped because they arrived faster than `receive` was called
   * (`node` backend, past a 1,024-datagram queue; the kernel's own drops are
   * not seen here).
   */
  readonly dropped: number;
  /**
   * The next datagram, or `null` once the socket is closed. On the `deno`
   * backend the data is a view of one buffer reused by every receive.
   */
  receive(): Promise<Datagram | null>;
  /**
   * Sends `data` to `to`; resolves once the kernel took it. The socket reads
   * `data` until then: leave it unchanged until the promise settles (the
   * datagram transport above it sends copies).
   *
   * @throws {RangeError} for a datagram larger than UDP carries to `to` (see
   * {@linkcode checkDatagramSize}).
   */
  send(data: Uint8Array, to: Deno.NetAddr): Promise<void>;
  /** Closes the socket; a pending `receive` resolves `null`. Safe to call twice. */
  close(): void;
  /**
   * Resolves once the system has released the socket after `close` (its port
   * is free again): at once on the `deno` backend, a turn later on `node`.
   */
  readonly closed: Promise<void>;
  /** Closes the socket and waits until it is released, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Binds a UDP socket on the best backend available (logged at debug level)
 * and sets its buffer sizes. The raw endpoint: no reflection guard, no
 * queue; `serveUdp` and `connectUdp` build on it.
 *
 * @example Echo three datagrams, then close
 * ```ts
 * import { openDatagramSocket } from "@x/echo/udp";
 *
 * const socket = await openDatagramSocket({ hostname: "127.0.0.1", port: 0 });
 * const sender = await openDatagramSocket();
 * for (const text of ["a", "b", "c"]) await sender.send(new TextEncoder().encode(text), socket.addr);
 * let count = 0;
 * for await (const [data, from] of socket) {
 *   await socket.send(data, from);
 *   if (++count === 3) socket.close();
 * }
 * sender.close();
 * ```
 *
 * @throws {Deno.errors.AddrInUse} when the address is taken; the message names it.
 * @throws {Deno.errors.NotSupported} for `backend: "deno"` without `--unstable-net`.
 * @throws {RangeError} for an option out of range, before any socket is opened.
 */
export async function openDatagramSocket(
  options: DatagramBindOptions = {},
): Promise<DatagramSocket> {
  const { hostname = "127.0.0.1", port = 0, reuseAddress = false, reusePort = false } = options;
  checkAddress(hostname, port, 0);
  validateUdpSocketOptions(options);
  const found = getPoller();
  const backend = options.backend ?? defaultBackend(found);
  if (backend !== "epoll" && backend !== "deno" && backend !== "node") {
    throw new RangeError(
      `Cannot use backend ${JSON.stringify(backend)}: it must be "epoll", "deno" or "node"`,
    );
  }
  if (backend === "epoll" && typeof found === "string") {
    throw new Deno.errors.NotSupported(
      `Cannot use the "epoll" datagram backend: ${found}; ` +
        "leave backend unset to use the best one available",
    );
  }
  if (reusePort && backend !== "epoll") {
    throw new Deno.errors.NotSupported(
      `Cannot use reusePort on the "${backend}" datagram backend: it cannot set SO_REUSEPORT; ` +
        'use the "epoll" backend (Linux, --allow-ffi)',
    );
  }
  if (backend === "deno" && !hasUnstableNet()) {
    throw new Deno.errors.NotSupported(
      'Cannot use the "deno" datagram backend: it needs Deno\'s --unstable-net flag; ' +
        "run with it, or leave backend unset to use the best backend available",
    );
  }
  let socket: DatagramSocket;
  try {
    socket = backend === "epoll"
      ? new EpollDatagramSocket(datagramLibc(), found as Poller, hostname, port, {
        reuseAddress,
        reusePort,
      })
      : backend === "deno"
      ? new DenoDatagramSocket(hostname, port, reuseAddress)
      : await NodeDatagramSocket.bind(hostname, port, reuseAddress);
  } catch (error) {
    throw bindError(error, { transport: "udp", hostname, port });
  }
  if (backend === "node" && options.backend === undefined) noteSlowBackend(found);
  try {
    setUpDatagramSocket(
      socket.addr,
      options,
      socket instanceof EpollDatagramSocket ? socket.fd : undefined,
    );
  } catch (error) {
    socket.close();
    await socket.closed;
    throw error;
  }
  udpLogger.debug("UDP socket {address} runs on the {backend} backend", {
    address: formatAddress(socket.addr),
    backend: backend === "epoll"
      ? "epoll (recvmmsg/sendmmsg)"
      : backend === "deno"
      ? "Deno.listenDatagram"
      : "node:dgram",
  });
  return socket;
}

/** The best backend here: epoll where FFI works on Linux, then Deno's own, then node:dgram. */
function defaultBackend(poller: Poller | string): DatagramBackend {
  if (typeof poller !== "string") return "epoll";
  return hasUnstableNet() ? "deno" : "node";
}

let notedSlowBackend = false;

/** Says once why UDP runs on node:dgram, the slowest backend, and what would do better. */
function noteSlowBackend(poller: Poller | string): void {
  if (notedSlowBackend) return;
  notedSlowBackend = true;
  udpLogger.warning(
    "UDP runs on node:dgram, the slowest backend: epoll is not available ({reason}) and Deno " +
      "runs without --unstable-net",
    { reason: poller },
  );
}

/** Yields `socket`'s datagrams until it is closed. */
async function* datagramsOf(socket: DatagramSocket): AsyncGenerator<Datagram> {
  for (let datagram; (datagram = await socket.receive()) !== null;) yield datagram;
}

/**
 * Checks a datagram's size before it reaches the kernel: at most
 * {@linkcode MAX_DATAGRAM_SIZE} bytes to an IPv4 address,
 * {@linkcode MAX_DATAGRAM_SIZE_IPV6} to an IPv6 one (and to a host name,
 * whose family is not known yet; the kernel then has the last word).
 *
 * @throws {RangeError} naming the size, the limit and what to do instead.
 */
export function checkDatagramSize(data: Uint8Array, to: Deno.NetAddr): void {
  if (data.length <= MAX_DATAGRAM_SIZE) return;
  const ipv4 = /^[\d.]+$/.test(to.hostname);
  const limit = ipv4 ? MAX_DATAGRAM_SIZE : MAX_DATAGRAM_SIZE_IPV6;
  if (data.length > limit) {
    throw new RangeError(
      `Cannot send a datagram of ${data.length} bytes to udp ${formatAddress(to)}: ` +
        `UDP carries at most ${limit} bytes over IPv${ipv4 ? 4 : 6}; split the data or use TCP`,
    );
  }
}

/**
 * Checks that a socket bound to `local` can reach `to`: an IPv4 socket
 * cannot send to an IPv6 address (the kernel says only "address family not
 * supported", and `node:dgram` under Deno not even that).
 *
 * @throws {Deno.errors.NotSupported} naming both addresses and the fix.
 */
export function checkFamily(local: Deno.NetAddr, to: Deno.NetAddr): void {
  if (to.hostname.includes(":") && !local.hostname.includes(":")) {
    throw new Deno.errors.NotSupported(
      `Cannot send a datagram to udp ${formatAddress(to)} from the IPv4 socket ` +
        `${formatAddress(local)}: bind an IPv6 address (such as "::") to reach IPv6 peers`,
    );
  }
}

function bindError(error: unknown, where: Deno.NetAddr): unknown {
  const code = (error as { code?: string }).code;
  const text = `udp ${formatAddress(where)}`;
  if (error instanceof Deno.errors.AddrInUse || code === "EADDRINUSE") {
    return new Deno.errors.AddrInUse(
      `Cannot bind ${text}: the address is already in use; ` +
        `stop the other server or choose another port (0 picks a free one)`,
      { cause: error },
    );
  }
  if (error instanceof Deno.errors.AddrNotAvailable || code === "EADDRNOTAVAIL") {
    return new Deno.errors.AddrNotAvailable(
      `Cannot bind ${text}: no local interface has that address; ` +
        `use 127.0.0.1, 0.0.0.0 or an address of this machine`,
      { cause: error },
    );
  }
  if (error instanceof Deno.errors.PermissionDenied || code === "EACCES") {
    return new Deno.errors.PermissionDenied(
      `Cannot bind ${text}: permission denied` + privilegeHint(where.port, error),
      { cause: error },
    );
  }
  return error;
}

/** `Deno.listenDatagram`, receiving into one reused buffer. */
class DenoDatagramSocket implements DatagramSocket {
  readonly backend = "deno";
  readonly addr: Deno.NetAddr;
  readonly dropped = 0;
  readonly #conn: Deno.DatagramConn;
  // One buffer, big enough for any datagram over IPv4 or IPv6.
  readonly #buffer = new Uint8Array(MAX_DATAGRAM_SIZE_IPV6);
  readonly receiveBuffer: ArrayBufferLike = this.#buffer.buffer;
  readonly closed: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(hostname: string, port: number, reuseAddress: boolean) {
    this.#conn = Deno.listenDatagram({ hostname, port, transport: "udp", reuseAddress });
    this.addr = this.#conn.addr as Deno.NetAddr;
  }

  [Symbol.asyncIterator](): AsyncIterator<Datagram> {
    return datagramsOf(this);
  }

  async receive(): Promise<Datagram | null> {
    if (this.#closed) return null;
    try {
      // Deno's own [data, from] pair, with a UDP address: no copy.
      return await this.#conn.receive(this.#buffer) as Datagram;
    } catch (error) {
      if (this.#closed) return null;
      throw error;
    }
  }

  async send(data: Uint8Array, to: Deno.NetAddr): Promise<void> {
    checkDatagramSize(data, to);
    checkFamily(this.addr, to);
    await this.#conn.send(data, to);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#conn.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return this.closed;
  }
}

/** Datagrams node:dgram delivered that nobody has received yet, at most this many. */
const NODE_QUEUE_LIMIT = 1024;

type NodeSocket = import("node:dgram").Socket;

/** `node:dgram`, whose events are queued for `receive` (bounded, like a kernel buffer). */
class NodeDatagramSocket implements DatagramSocket {
  readonly backend = "node";
  readonly addr: Deno.NetAddr;
  readonly receiveBuffer = null;
  dropped = 0;
  readonly #socket: NodeSocket;
  readonly #queue: Datagram[] = [];
  #waiting: PromiseWithResolvers<Datagram | null> | null = null;
  #failure: Error | null = null;
  #closed = false;
  readonly #released = Promise.withResolvers<void>();

  static async bind(hostname: string, port: number, reuseAddress: boolean) {
    const { createSocket } = await import("node:dgram");
    const socket = createSocket({
      type: hostname.includes(":") ? "udp6" : "udp4",
      reuseAddr: reuseAddress,
    });
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(port, hostname, () => {
        socket.off("error", reject);
        resolve();
      });
    }).catch((error) => {
      socket.close();
      throw error;
    });
    return new NodeDatagramSocket(socket);
  }

  private constructor(socket: NodeSocket) {
    this.#socket = socket;
    const { address, port } = socket.address();
    this.addr = { transport: "udp", hostname: address, port };
    socket.on("message", (message, info) => {
      const datagram: Datagram = [
        new Uint8Array(message.buffer, message.byteOffset, message.byteLength),
        { transport: "udp", hostname: info.address, port: info.port },
      ];
      if (this.#waiting) {
        this.#wake().resolve(datagram);
      } else if (this.#queue.length < NODE_QUEUE_LIMIT) {
        this.#queue.push(datagram);
      } else {
        this.dropped++;
      }
    });
    // Errors go to the waiting receive, or to the next one.
    socket.on("error", (error) => {
      if (this.#waiting) this.#wake().reject(error);
      else this.#failure = error;
    });
  }

  [Symbol.asyncIterator](): AsyncIterator<Datagram> {
    return datagramsOf(this);
  }

  receive(): Promise<Datagram | null> {
    if (this.#queue.length > 0) return Promise.resolve(this.#queue.shift()!);
    if (this.#failure) {
      const failure = this.#failure;
      this.#failure = null;
      return Promise.reject(failure);
    }
    if (this.#closed) return Promise.resolve(null);
    this.#waiting = Promise.withResolvers();
    return this.#waiting.promise;
  }

  #wake(): PromiseWithResolvers<Datagram | null> {
    const waiting = this.#waiting!;
    this.#waiting = null;
    return waiting;
  }

  async send(data: Uint8Array, to: Deno.NetAddr): Promise<void> {
    checkDatagramSize(data, to);
    checkFamily(this.addr, to);
    await new Promise<void>((resolve, reject) => {
      this.#socket.send(data, to.port, to.hostname, (error) => error ? reject(error) : resolve());
    });
  }

  get closed(): Promise<void> {
    return this.#released.promise;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // node:dgram releases the socket a turn later and says so with the callback.
    try {
      this.#socket.close(() => this.#released.resolve());
    } catch {
      this.#released.resolve(); // It was not running any more.
    }
    this.#queue.length = 0;
    if (this.#waiting) this.#wake().resolve(null);
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return this.closed;
  }
}
