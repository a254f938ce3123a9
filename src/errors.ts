/**
 * Errors shared by the TCP and UDP layers: the one a closed transport
 * throws, and how socket errors are told apart.
 *
 * @module
 */

/** The error came from our own close of the socket or listener, not from the peer. */
export function isLocalCancel(error: unknown): boolean {
  return error instanceof Deno.errors.Interrupted || error instanceof Deno.errors.BadResource;
}

/**
 * The peer reset or vanished: routine for a server, logged at debug level
 * only. Over TLS, a peer that closes without TLS's close_notify (most
 * clients that just close their socket) is one too: Deno's read reports it
 * as `UnexpectedEof`.
 */
export function isPeerFault(error: unknown): boolean {
  if (error instanceof TransportClosedError) return isPeerFault(error.cause);
  return error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.UnexpectedEof ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.NotConnected;
}

/** What to try after EACCES on a bind: a low port needs a privilege, anything else says why. */
export function privilegeHint(port: number, error: unknown): string {
  return port > 0 && port < 1024
    ? `: ports below 1024 need privileges; use a port of 1024 or more, or give deno ` +
      `the CAP_NET_BIND_SERVICE capability`
    : ` (${(error as Error).message})`;
}

/**
 * The error `write` (TCP) or `send` (UDP) throws once the transport cannot
 * send any more: after `close()`, `abort()` or the loss of the connection.
 *
 * @example Write only while the connection can take it
 * ```ts
 * import { type Transport, TransportClosedError } from "@x/echo";
 *
 * function tryWrite(transport: Transport, data: Uint8Array): boolean {
 *   try {
 *     transport.write(data);
 *     return true;
 *   } catch (error) {
 *     if (error instanceof TransportClosedError) return false;
 *     throw error;
 *   }
 * }
 * ```
 */
export class TransportClosedError extends Error {
  /**
   * Makes the error; `reason` says which call closed the transport, and
   * `options.cause` is the error that broke the connection, if one did.
   *
   * @example
   * ```ts
   * import { TransportClosedError } from "@x/echo";
   *
   * const error = new TransportClosedError("close() was called");
   * console.log(error.message);
   * ```
   */
  constructor(reason: string, options?: ErrorOptions) {
    super(`Cannot write to this transport: ${reason}`, options);
    this.name = "TransportClosedError";
  }
}
