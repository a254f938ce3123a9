/**
 * The datagram protocol-callback API, after Python asyncio's
 * `DatagramProtocol` and `DatagramTransport`.
 *
 * A {@linkcode DatagramProtocol} is told what happens on one UDP socket; a
 * {@linkcode DatagramTransport} is how it sends and closes. The callbacks come
 * in a fixed order: `connectionMade` once, then `datagramReceived` and
 * `errorReceived` any number of times, then `connectionLost` exactly once.
 * Unlike TCP, an error (a datagram that could not be sent, an ICMP error)
 * does not close the socket: it is reported and the socket goes on.
 *
 * @module
 */

import type { SocketOptionValues } from "../sockopt/read_back.ts";

/**
 * What {@linkcode DatagramTransport.getExtraInfo} returns, by name.
 *
 * @example
 * ```ts
 * import type { DatagramExtraInfo } from "@x/echo/udp";
 *
 * const where = (info: DatagramExtraInfo) => `${info.sockname.hostname}:${info.sockname.port}`;
 * ```
 */
export interface DatagramExtraInfo {
  /** The local address the socket is bound to. */
  sockname: Deno.NetAddr;
  /** The default remote address of a client socket; `undefined` on a server. */
  peername: Deno.NetAddr | undefined;
  /** The socket's options, read back from the kernel (needs `--allow-ffi`). */
  socketOptions: SocketOptionValues;
}

/**
 * Names accepted by {@linkcode DatagramTransport.getExtraInfo}.
 *
 * @example
 * ```ts
 * import type { DatagramExtraInfoName } from "@x/echo/udp";
 *
 * const names: DatagramExtraInfoName[] = ["sockname", "peername", "socketOptions"];
 * ```
 */
export type DatagramExtraInfoName = keyof DatagramExtraInfo;

/**
 * The sending and control side of one UDP socket, handed to
 * {@linkcode DatagramProtocol.connectionMade}.
 *
 * @example Answer every datagram with its length
 * ```ts
 * import type { DatagramProtocol, DatagramTransport } from "@x/echo";
 *
 * class Lengths implements DatagramProtocol {
 *   #transport?: DatagramTransport;
 *   connectionMade(transport: DatagramTransport): void {
 *     this.#transport = transport;
 *   }
 *   datagramReceived(data: Uint8Array, from: Deno.NetAddr): void {
 *     this.#transport!.send(new TextEncoder().encode(`${data.length}\n`), from);
 *   }
 * }
 * ```
 */
export interface DatagramTransport {
  /**
   * Queues `data` as one datagram to `to`, or to the default remote address
   * of a client when `to` is omitted. Never blocks: datagrams are sent in
   * order as the socket takes them. A datagram the kernel refuses is
   * reported to `errorReceived`, and the transport goes on.
   *
   * `data` is yours again when the call returns: the transport queues a
   * copy, so what goes out is what `data` held at the call (a view of the
   * receive buffer, or a buffer you reuse, is safe to send).
   *
   * @throws {RangeError} for a datagram larger than UDP carries (65,507 bytes
   * over IPv4, 65,527 over IPv6).
   * @throws {TypeError} without `to` on a socket that has no default remote,
   * or with a `to` other than a client's default remote.
   * @throws {TransportClosedError} after `close` or `abort`.
   */
  send(data: Uint8Array, to?: Deno.NetAddr): void;
  /**
   * Stops receiving at once, sends what is queued, then closes the socket and
   * calls `connectionLost(undefined)`. Calling it again does nothing.
   */
  close(): void;
  /** Closes the socket at once, dropping queued datagrams, and calls `connectionLost(undefined)`. */
  abort(): void;
  /** `true` once `close` or `abort` was called or the socket was lost. */
  isClosing(): boolean;
  /** Bytes of queued datagrams not yet taken by the kernel. */
  getWriteBufferSize(): number;
  /**
   * Information about the socket: `"sockname"` (the bound address),
   * `"peername"` (a client's default remote, else `undefined`) or
   * `"socketOptions"` (read back from the kernel with `getsockopt`; needs
   * `--allow-ffi` and throws once the socket is closed).
   */
  getExtraInfo<K extends DatagramExtraInfoName>(name: K): DatagramExtraInfo[K];
  /** Resolves once the socket is closed and `connectionLost` has returned. */
  readonly closed: Promise<void>;
}

/**
 * The callbacks of one UDP socket; all optional.
 *
 * If `datagramReceived` throws, the error is logged and that datagram is
 * dropped: one bad datagram does not stop the others. If `connectionMade`
 * (or the promise it returns), `errorReceived`, `pauseWriting` or
 * `resumeWriting` throws, the transport is aborted and `connectionLost`
 * receives the error.
 *
 * @example A protocol that prints what it receives
 * ```ts
 * import type { DatagramProtocol } from "@x/echo";
 *
 * const printer: DatagramProtocol = {
 *   datagramReceived(data, from) {
 *     console.log(`${from.hostname}:${from.port} sent ${data.length} bytes`);
 *   },
 *   errorReceived(error) {
 *     console.error(error.message);
 *   },
 * };
 * ```
 */
export interface DatagramProtocol {
  /** Called once, first, with the socket's transport. */
  connectionMade?(transport: DatagramTransport): void;
  /**
   * Called with each datagram and its source. `data` may be a view of the
   * transport's receive buffer, valid only until this call returns: copy it
   * (`data.slice()`) to keep it. Passing it to `transport.send` in this call
   * is safe.
   */
  datagramReceived?(data: Uint8Array, from: Deno.NetAddr): void;
  /**
   * Called when a send or a receive failed (for example the kernel refused a
   * datagram, or reported that a peer's port is closed). The socket stays open.
   */
  errorReceived?(error: Error): void;
  /**
   * Called exactly once, last, when the socket is closed: `error` is
   * `undefined` after `close` or `abort`, otherwise the cause.
   */
  connectionLost?(error?: Error): void;
  /** The send queue grew past the high water mark: stop sending if you can. */
  pauseWriting?(): void;
  /** The send queue drained to the low water mark: sending may resume. */
  resumeWriting?(): void;
}
