/**
 * What both TCP transports (over `Deno.TcpConn` and over an epoll
 * descriptor) do alike when a connection fails or ends: how the failure is
 * logged, and how `connectionLost` is delivered.
 *
 * @module
 */

import type { Protocol } from "./protocol.ts";
import { tcpLogger } from "./_log.ts";
import { isPeerFault } from "../errors.ts";

/**
 * Logs why the connection with `peer` is being aborted: at error level when
 * the protocol's `callback` threw, at debug level when the peer reset or
 * vanished, else as a warning. Returns `cause` as an `Error`.
 */
export function reportFailure(cause: unknown, peer: string, callback?: string): Error {
  const error = cause instanceof Error ? cause : new Error(String(cause));
  if (callback) {
    tcpLogger.error("Protocol {callback} threw for {peer}; closing that connection: {error}", {
      callback,
      peer,
      error,
    });
  } else if (isPeerFault(error)) {
    tcpLogger.debug("Connection with {peer} failed: {error}", { peer, error });
  } else {
    tcpLogger.warning("Connection with {peer} failed: {error}", { peer, error });
  }
  return error;
}

/**
 * Calls `protocol.connectionLost(error)` on a later turn, as asyncio does,
 * so a close made inside a callback never re-enters the protocol; a throw is
 * logged. Then `done` runs.
 */
export function deliverConnectionLost(
  protocol: Protocol,
  error: Error | undefined,
  transport: { readonly peer: string },
  logInfo: boolean,
  done: () => void,
): void {
  queueMicrotask(() => {
    if (logInfo) tcpLogger.info("Connection lost with {peer}", { peer: transport.peer });
    try {
      protocol.connectionLost?.(error);
    } catch (thrown) {
      tcpLogger.error("Protocol connectionLost threw for {peer}: {error}", {
        peer: transport.peer,
        error: thrown,
      });
    }
    done();
  });
}

/** The error `getExtraInfo` throws for a name it does not know. */
export function unknownExtraInfo(name: unknown): TypeError {
  return new TypeError(
    `Unknown extra info name: ${JSON.stringify(name)}. ` +
      `Use "peername", "sockname" or "socketOptions".`,
  );
}
