/**
 * The protocol-callback API, after Python asyncio's `Protocol` and `Transport`.
 *
 * A {@linkcode Protocol} is told what happens on one connection; a
 * {@linkcode Transport} is how it acts on that connection. The callbacks come in
 * a fixed order: `connectionMade` once, `dataReceived` any number of times,
 * `eofReceived` at most once, then `connectionLost` exactly once.
 *
 * @module
 */

import type { SocketOptionValues } from "../sockopt/read_back.ts";
import type { ProxyHeader } from "../proxy/header.ts";
import type { WaterMarks } from "./water_marks.ts";

/**
 * An address a connection can have: a TCP address, or a Unix socket's path
 * (`Deno.UnixAddr`, on a server or client given `path`; the unbound end of
 * a Unix connection, such as the peer of a connection a Unix server
 * accepted, has a `null` path). Tell them apart by `transport`.
 *
 * @example
 * ```ts
 * import type { ConnAddr } from "@x/echo/tcp";
 *
 * const show = (addr: ConnAddr) =>
 *   "path" in addr ? `unix:${addr.path}` : `${addr.hostname}:${addr.port}`;
 * ```
 */
export type ConnAddr = Deno.NetAddr | Deno.UnixAddr;

/**
 * What a TLS connection's handshake settled, as
 * `getExtraInfo("tls")` returns it.
 *
 * Deno 2.9 reports only the ALPN protocol of a handshake: a server cannot
 * learn the name the client asked for (SNI) nor the TLS version, so
 * `serverName` and `version` are `null` there. A client's `serverName` is the
 * name it sent and checked the certificate against; its `version` is `null`
 * too.
 *
 * @example
 * ```ts
 * import type { TlsInfo } from "@x/echo/tcp";
 *
 * const describe = (tls: TlsInfo | null) =>
 *   tls === null ? "plain TCP" : `TLS, ALPN ${tls.alpnProtocol ?? "none"}`;
 * ```
 */
export interface TlsInfo {
  /** The SNI name: the one a client sent; `null` on a server (Deno does not expose it). */
  serverName: string | null;
  /** The protocol ALPN settled on (`"h2"`, `"http/1.1"`, ...), or `null` when none was. */
  alpnProtocol: string | null;
  /** The TLS version, such as `"TLSv1.3"`; `null`, as Deno does not expose it. */
  version: string | null;
}

/**
 * What {@linkcode Transport.getExtraInfo} returns, by name.
 *
 * @example
 * ```ts
 * import type { ExtraInfo } from "@x/echo/tcp";
 *
 * const peerOf = (info: ExtraInfo) =>
 *   "path" in info.peername
 *     ? "a Unix socket peer"
 *     : `${info.peername.hostname}:${info.peername.port}`;
 * ```
 */
export interface ExtraInfo {
  /**
   * The remote address: the client. On a server that takes the PROXY
   * protocol, the source its header names (the socket's own peer, the
   * proxy, is `proxyPeername`); the socket's peer for a LOCAL or UNKNOWN
   * header. A `Deno.UnixAddr` on a Unix socket (see {@linkcode ConnAddr}).
   */
  peername: ConnAddr;
  /**
   * The PROXY protocol header the connection began with, TLVs and all, or
   * `null` where none was expected (see `TcpServerOptions.proxyProtocol`).
   */
  proxyHeader: ProxyHeader | null;
  /** The socket's own peer (the proxy) when a PROXY header was received, else `null`. */
  proxyPeername: ConnAddr | null;
  /** The local address (a `Deno.UnixAddr` on a Unix socket). */
  sockname: ConnAddr;
  /**
   * The socket's options, read back from the kernel (needs `--allow-ffi`;
   * TCP only, TLS included: a Unix socket has none of these).
   */
  socketOptions: SocketOptionValues;
  /**
   * What the TLS handshake settled (see {@linkcode TlsInfo}), or `null` on a
   * connection without TLS. On a server the handshake is over before
   * `connectionMade`; a connection whose handshake failed never reaches
   * the protocol.
   */
  tls: TlsInfo | null;
}

/**
 * Names accepted by {@linkcode Transport.getExtraInfo}.
 *
 * @example
 * ```ts
 * import type { ExtraInfoName, Transport } from "@x/echo/tcp";
 *
 * function show(transport: Transport, name: ExtraInfoName): string {
 *   return JSON.stringify(transport.getExtraInfo(name));
 * }
 * ```
 */
export type ExtraInfoName = keyof ExtraInfo;

/**
 * The writing and control side of one connection, handed to
 * {@linkcode Protocol.connectionMade}.
 *
 * @example Echo every read back
 * ```ts
 * import type { Protocol, Transport } from "@x/echo";
 *
 * class Echo implements Protocol {
 *   #transport?: Transport;
 *   connectionMade(transport: Transport): void {
 *     this.#transport = transport;
 *   }
 *   dataReceived(data: Uint8Array): void {
 *     this.#transport!.write(data);
 *   }
 * }
 * ```
 */
export interface Transport {
  /**
   * Sends `data`. Never blocks, drops or reorders bytes: what the socket
   * takes now is sent at once (on the epoll backend; Deno's own sockets
   * take nothing synchronously), and a copy of the rest is queued and sent
   * in order. Past the high water mark the protocol's `pauseWriting` is called.
   *
   * `data` is yours again when the call returns: what goes out is what it
   * held at the call, wherever it lives (another connection's read buffer,
   * a view `dataReceived` got, a buffer you reuse).
   *
   * @throws {TransportClosedError} after `writeEof`, `close` or `abort`,
   * and once the connection failed (a reset, a broken pipe), which may be
   * before `connectionLost` is called: a protocol that writes to another
   * connection (a proxy) catches it there, or checks `isClosing()` first.
   */
  write(data: Uint8Array): void;
  /**
   * Half-closes: sends FIN once the buffered data is written. Reading goes on.
   * When end of input has also been received, the transport then closes.
   */
  writeEof(): void;
  /** Whether this transport supports {@linkcode Transport.writeEof} (always `true` for TCP). */
  canWriteEof(): boolean;
  /**
   * Stops reading at once, sends what is buffered, then closes the connection
   * and calls `connectionLost(undefined)`. Calling it again does nothing.
   */
  close(): void;
  /**
   * Closes the connection at once, dropping buffered data, and calls
   * `connectionLost(undefined)`.
   */
  abort(): void;
  /** `true` once `close` or `abort` was called or the connection was lost. */
  isClosing(): boolean;
  /** Stops calling `dataReceived` until {@linkcode Transport.resumeReading}. */
  pauseReading(): void;
  /** Resumes calling `dataReceived` after {@linkcode Transport.pauseReading}. */
  resumeReading(): void;
  /** `true` while reading is on (not paused, not closing). */
  isReading(): boolean;
  /** Bytes queued and not yet accepted by the kernel. */
  getWriteBufferSize(): number;
  /** The current `{ high, low }` write-buffer water marks, in bytes. */
  getWriteBufferLimits(): WaterMarks;
  /**
   * Sets the write-buffer water marks. `pauseWriting` is called when the
   * buffer grows past `high`, `resumeWriting` when it drains to `low` or below.
   * Given only `high`, `low` is a quarter of it; given only `low`, `high` is
   * four times it.
   */
  setWriteBufferLimits(limits?: Partial<WaterMarks>): void;
  /**
   * Information about the connection: `"peername"` (the remote address),
   * `"sockname"` (the local address), `"socketOptions"` (the options read
   * back from the kernel with `getsockopt`; this one needs `--allow-ffi` and
   * throws once the connection is closed), `"tls"` (the handshake's ALPN
   * protocol, SNI name and version, or `null` without TLS), `"proxyHeader"`
   * and `"proxyPeername"`; see {@linkcode ExtraInfo}.
   */
  getExtraInfo<K extends ExtraInfoName>(name: K): ExtraInfo[K];
  /** Resolves once the connection is closed and `connectionLost` has returned. */
  readonly closed: Promise<void>;
}

/**
 * The callbacks of one connection. Only `connectionMade` is required to do
 * anything useful; the others are optional.
 *
 * If a callback throws (or returns a rejected promise from
 * `connectionMade`), the connection is aborted and `connectionLost` receives
 * the error; other connections are not affected.
 *
 * @example A protocol that counts bytes and answers with the count at end of input
 * ```ts
 * import type { Protocol, Transport } from "@x/echo";
 *
 * class Counter implements Protocol {
 *   #transport?: Transport;
 *   #bytes = 0;
 *   connectionMade(transport: Transport): void {
 *     this.#transport = transport;
 *   }
 *   dataReceived(data: Uint8Array): void {
 *     this.#bytes += data.length;
 *   }
 *   eofReceived(): boolean {
 *     this.#transport!.write(new TextEncoder().encode(`${this.#bytes}\n`));
 *     return false; // close once the answer is sent
 *   }
 * }
 * ```
 */
export interface Protocol {
  /** Called once, first, with the connection's transport. */
  connectionMade?(transport: Transport): void;
  /**
   * Called with each chunk read. `data` is a view of the transport's read
   * buffer, valid only until this call returns: copy it (`data.slice()`) to
   * keep it. Writing it, to this connection or any other, is safe: `write`
   * copies what it cannot send at once.
   */
  dataReceived?(data: Uint8Array): void;
  /**
   * Called once when the peer has finished sending (it half-closed).
   * Return `true` to keep the connection open for writing (then call
   * `close` or `writeEof` when done); anything else closes the transport after
   * its buffered data is sent.
   */
  eofReceived?(): boolean | void;
  /**
   * Called exactly once, last, when the connection is closed: `error` is
   * `undefined` after a clean close or abort, otherwise the cause (a reset, a
   * callback that threw).
   */
  connectionLost?(error?: Error): void;
  /** The write buffer grew past the high water mark: stop writing if you can. */
  pauseWriting?(): void;
  /** The write buffer drained to the low water mark: writing may resume. */
  resumeWriting?(): void;
}

/**
 * A {@linkcode Protocol} that lends the transport its own buffer to receive
 * into, after asyncio's `BufferedProtocol`: the epoll backend reads straight
 * into it, sparing a copy. The transport calls `getBuffer` before each read
 * and `bufferUpdated` after it with the byte count; `dataReceived` is not
 * called. The Deno backend and clients read into their own buffer and copy.
 *
 * If either method throws, or `getBuffer` returns an empty buffer, the
 * connection is aborted as for any callback that throws.
 *
 * @example Count bytes without a copy per read
 * ```ts
 * import type { BufferedProtocol } from "@x/echo";
 *
 * class Counter implements BufferedProtocol {
 *   readonly #scratch = new Uint8Array(64 * 1024);
 *   bytes = 0;
 *   getBuffer(_sizeHint: number): Uint8Array {
 *     return this.#scratch;
 *   }
 *   bufferUpdated(nbytes: number): void {
 *     this.bytes += nbytes;
 *   }
 * }
 * ```
 */
export interface BufferedProtocol extends Protocol {
  /**
   * Returns the buffer the next read goes into (at least one byte; its
   * start is written). `sizeHint` is the most one read takes; a smaller
   * buffer makes smaller reads.
   */
  getBuffer(sizeHint: number): Uint8Array;
  /** The last read wrote `nbytes` bytes at the start of the buffer `getBuffer` returned. */
  bufferUpdated(nbytes: number): void;
}

/**
 * Makes a fresh {@linkcode Protocol} for each connection.
 *
 * @example
 * ```ts
 * import type { ProtocolFactory } from "@x/echo";
 *
 * const silent: ProtocolFactory = () => ({});
 * ```
 */
export type ProtocolFactory = () => Protocol;
