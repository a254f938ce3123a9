/**
 * The stream-style API: servers and clients that hand out a
 * {@linkcode StreamReader} and a {@linkcode StreamWriter}. It runs on the
 * protocol API, as asyncio's streams do: one read loop, one write path.
 *
 * @module
 */

import type { BufferedProtocol, Transport } from "../core/protocol.ts";
import { resolveLimit, StreamReader, type StreamReaderOptions } from "./stream_reader.ts";
import { type FlowControl, StreamWriter } from "./stream_writer.ts";
import { serveTcp, type TcpServer, type TcpServerOptions } from "../tcp/server.ts";
import type { ConnAddr } from "../core/protocol.ts";
import { connectTcp, type TcpConnectOptions } from "../tcp/client.ts";
import { tcpLogger } from "../core/_log.ts";
import { formatAddress } from "../_address.ts";
import { isPeerFault } from "../errors.ts";
import { lastRead } from "../core/_last_read.ts";

const ignore = () => {};

/**
 * Handles one connection in stream style. When it returns, the writer is
 * closed (buffered data is sent first); when it throws, the error is logged
 * with the peer address and only this connection is closed.
 *
 * @example
 * ```ts
 * import type { StreamHandler } from "@x/echo";
 *
 * const echo: StreamHandler = async (reader, writer) => {
 *   for await (const chunk of reader) {
 *     writer.write(chunk);
 *     await writer.drain();
 *   }
 * };
 * ```
 */
export type StreamHandler = (reader: StreamReader, writer: StreamWriter) => Promise<void>;

/**
 * Options of a stream-style server.
 *
 * @example
 * ```ts
 * import type { StreamServerOptions } from "@x/echo";
 *
 * const options: StreamServerOptions = { port: 8888, limit: 1 << 20 };
 * ```
 */
export interface StreamServerOptions extends TcpServerOptions, StreamReaderOptions {}

/**
 * Options of a stream-style client.
 *
 * @example
 * ```ts
 * import type { StreamConnectOptions } from "@x/echo";
 *
 * const options: StreamConnectOptions = { hostname: "127.0.0.1", port: 8888 };
 * ```
 */
export interface StreamConnectOptions extends TcpConnectOptions, StreamReaderOptions {}

/**
 * A connected stream-style client.
 *
 * @example
 * ```ts
 * import { connectTcpStreams, type StreamConnection } from "@x/echo";
 *
 * async function open(port: number): Promise<StreamConnection> {
 *   return await connectTcpStreams({ port });
 * }
 * ```
 */
export interface StreamConnection {
  /** What the server sends. */
  reader: StreamReader;
  /** What we send. */
  writer: StreamWriter;
}

/**
 * The protocol under the stream API: lets the transport receive straight
 * into the reader's buffer, tells a writer when it may write again, and
 * says when the connection is lost.
 */
class StreamProtocol implements BufferedProtocol, FlowControl {
  readonly reader: StreamReader;
  writer: StreamWriter | null = null;
  readonly #onConnected: (reader: StreamReader, writer: StreamWriter) => void;
  /** The writer's `closed`, made only when asked for (idle connections add up). */
  #lost: PromiseWithResolvers<void> | null = null;
  #lostError: Error | undefined;
  #isLost = false;
  #paused = false;
  #drained: PromiseWithResolvers<void> | null = null;

  constructor(
    options: StreamReaderOptions,
    onConnected: (reader: StreamReader, writer: StreamWriter) => void,
  ) {
    this.reader = new StreamReader(options);
    this.#onConnected = onConnected;
  }

  connectionMade(transport: Transport): void {
    this.reader.setTransport(transport);
    this.writer = new StreamWriter(transport, this);
    this.#onConnected(this.reader, this.writer);
  }

  getBuffer(sizeHint: number): Uint8Array {
    return this.reader.getBuffer(sizeHint);
  }

  bufferUpdated(nbytes: number): void {
    this.reader.bufferUpdated(nbytes);
  }

  eofReceived(): boolean {
    this.reader.feedEof();
    // Stay half-open: the handler may still write; it closes when done.
    return true;
  }

  /** The server stops (see `core/_last_read.ts`): the handler's input ends; it closes when done. */
  [lastRead](): boolean {
    return this.eofReceived();
  }

  connectionLost(error?: Error): void {
    this.#isLost = true;
    this.#lostError = error;
    if (error) this.reader.setException(error);
    else this.reader.feedEof();
    if (this.#lost !== null) this.#settleLost(this.#lost);
    this.#drained?.reject(this.#lostConnectionError());
    this.#drained = null;
  }

  pauseWriting(): void {
    this.#paused = true;
  }

  resumeWriting(): void {
    this.#paused = false;
    this.#drained?.resolve();
    this.#drained = null;
  }

  get closed(): Promise<void> {
    if (this.#lost === null) {
      this.#lost = Promise.withResolvers<void>();
      // Like a web stream's `closed`, a failure here is reported to those who await it only.
      this.#lost.promise.catch(ignore);
      if (this.#isLost) this.#settleLost(this.#lost);
    }
    return this.#lost.promise;
  }

  #settleLost(lost: PromiseWithResolvers<void>): void {
    if (this.#lostError) lost.reject(this.#lostError);
    else lost.resolve();
  }

  waitForDrain(): Promise<void> {
    if (this.#isLost) return Promise.reject(this.#lostConnectionError());
    if (!this.#paused) return Promise.resolve();
    this.#drained ??= Promise.withResolvers<void>();
    return this.#drained.promise;
  }

  #lostConnectionError(): Error {
    return this.#lostError ??
      new Deno.errors.ConnectionReset("Cannot drain the writer: the connection was lost");
  }
}

/**
 * Serves TCP in stream style: `handler` runs once per connection with its
 * reader and writer. Given `path`, on that Unix socket (this signature,
 * whose `addr` is a `Deno.UnixAddr`); given `tls`, over TLS (see
 * `TcpServerOptions`).
 *
 * @example A server that sends each line back in upper case
 * ```ts
 * import { serveTcpStreams } from "@x/echo";
 *
 * const server = serveTcpStreams({ port: 0 }, async (reader, writer) => {
 *   for (let line; (line = await reader.readLine()) !== null;) {
 *     writer.write(new TextDecoder().decode(line).toUpperCase());
 *     await writer.drain();
 *   }
 * });
 * await server.shutdown();
 * ```
 */
export function serveTcpStreams(
  options: StreamServerOptions & { path: string },
  handler: StreamHandler,
): TcpServer<Deno.UnixAddr>;
/**
 * Serves TCP in stream style on `hostname:port` (over TLS with `tls`); see
 * the first signature, which serves a Unix socket (`path`).
 *
 * @example
 * ```ts
 * import { serveTcpStreams } from "@x/echo";
 *
 * const server = serveTcpStreams({ port: 0 }, async (reader, writer) => {
 *   for await (const chunk of reader) writer.write(chunk);
 * });
 * await server.shutdown();
 * ```
 */
export function serveTcpStreams(options: StreamServerOptions, handler: StreamHandler): TcpServer;
export function serveTcpStreams(
  options: StreamServerOptions,
  handler: StreamHandler,
): TcpServer<ConnAddr> {
  if (typeof handler !== "function") {
    throw new TypeError(
      `Cannot use handler of type ${typeof handler}: it must be an async function ` +
        `(reader, writer) => { ... }`,
    );
  }
  const readerOptions: StreamReaderOptions = { limit: resolveLimit(options) };
  const onConnected = (reader: StreamReader, writer: StreamWriter) => {
    runHandler(handler, reader, writer);
  };
  return serveTcp(options, () => new StreamProtocol(readerOptions, onConnected));
}

/**
 * Runs `handler`, then closes the connection. Promise callbacks rather than
 * an `async` wrapper: a suspended wrapper per connection costs 10,000 idle
 * connections about 4 MB.
 */
function runHandler(handler: StreamHandler, reader: StreamReader, writer: StreamWriter): void {
  let running: Promise<void>;
  try {
    running = Promise.resolve(handler(reader, writer));
  } catch (error) {
    return handlerFailed(writer, error);
  }
  running.then(() => writer.transport.close(), (error) => handlerFailed(writer, error));
}

function handlerFailed(writer: StreamWriter, error: unknown): void {
  const peer = formatAddress(writer.getExtraInfo("peername"));
  if (isPeerFault(error)) {
    tcpLogger.debug("Stream handler for {peer} ended: {error}", { peer, error });
  } else {
    tcpLogger.error("Stream handler threw for {peer}; closing that connection: {error}", {
      peer,
      error,
    });
  }
  writer.transport.close();
}

/**
 * Connects to `hostname:port` and returns a reader and a writer, as asyncio's
 * `open_connection` does.
 *
 * @example Send a line and read the echo
 * ```ts
 * import { connectTcpStreams } from "@x/echo";
 *
 * async function ping(port: number): Promise<string> {
 *   const { reader, writer } = await connectTcpStreams({ port });
 *   writer.write("ping\n");
 *   const line = await reader.readLine();
 *   await writer.close();
 *   return new TextDecoder().decode(line ?? new Uint8Array());
 * }
 * ```
 */
export async function connectTcpStreams(options: StreamConnectOptions): Promise<StreamConnection> {
  const readerOptions: StreamReaderOptions = { limit: resolveLimit(options) };
  const { protocol } = await connectTcp(options, () => new StreamProtocol(readerOptions, () => {}));
  return { reader: protocol.reader, writer: protocol.writer! };
}
