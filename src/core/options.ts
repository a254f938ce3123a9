/**
 * The options of a transport, shared by servers and clients, and how they
 * are checked.
 *
 * @module
 */

import { checkInteger } from "../_validate.ts";
import { validateWaterMarks } from "./water_marks.ts";

/**
 * The largest read a connection makes on the `deno` backend (and in
 * clients): 64 KiB, the most one `dataReceived` call gets there. Reads start
 * small and grow with the traffic up to it, so an idle connection holds a
 * small buffer. The `epoll` backend reads into one buffer shared by all
 * connections and takes up to 256 KiB per read unless `readBufferSize` is
 * given.
 *
 * @example A smaller largest read for many connections with small messages
 * ```ts
 * import { DEFAULT_READ_BUFFER_SIZE } from "@x/echo/tcp";
 * import { serveEcho } from "@x/echo";
 *
 * const server = serveEcho({ port: 0, readBufferSize: DEFAULT_READ_BUFFER_SIZE / 16 });
 * await server.shutdown();
 * ```
 */
export const DEFAULT_READ_BUFFER_SIZE = 64 * 1024;

/**
 * Options of a TCP transport, shared by servers and clients.
 *
 * @example
 * ```ts
 * import type { TransportOptions } from "@x/echo/tcp";
 *
 * const options: TransportOptions = { readBufferSize: 16 * 1024, highWaterMark: 256 * 1024 };
 * ```
 */
export interface TransportOptions {
  /**
   * Bytes read from the socket at most per `dataReceived` call. Default
   * 65536 on the `deno` backend and in clients (a buffer per connection
   * that grows to it with the traffic and shrinks back); on a server's
   * `epoll` backend 262144, from one buffer all connections share.
   */
  readBufferSize?: number;
  /** Write-buffer size past which `pauseWriting` is called. Default 65536. */
  highWaterMark?: number;
  /** Write-buffer size at which `resumeWriting` is called. Default a quarter of the high mark. */
  lowWaterMark?: number;
}

/**
 * Checks transport options up front, so a bad value fails before any socket
 * is opened, with a message naming the option and the allowed range.
 */
export function validateTransportOptions(options: TransportOptions): void {
  const { readBufferSize, highWaterMark, lowWaterMark } = options;
  if (readBufferSize !== undefined) {
    checkInteger("readBufferSize", readBufferSize, 1, 2 ** 30);
  }
  validateWaterMarks(highWaterMark, lowWaterMark);
}
