/**
 * Classifies the errors a socket operation can end with.
 *
 * @module
 */

/** The error came from our own close of the socket or listener, not from the peer. */
export function isLocalCancel(error: unknown): boolean {
  return error instanceof Deno.errors.Interrupted || error instanceof Deno.errors.BadResource;
}

/** The peer reset or vanished: routine for a server, logged at debug level only. */
export function isPeerFault(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.NotConnected;
}
