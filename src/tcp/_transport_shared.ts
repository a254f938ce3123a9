/**
 * What both TCP transports (over `Deno.TcpConn` and over an epoll
 * descriptor) do alike: how a failure is logged, how `connectionLost` is
 * delivered, and how a {@linkcode BufferedProtocol} is told of received data.
 *
 * @module
 */

import type { BufferedProtocol, Protocol } from "./protocol.ts";
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

/** `protocol` when it is a {@linkcode BufferedProtocol} (it has both methods), else `null`. */
export function asBufferedProtocol(protocol: Protocol): BufferedProtocol | null {
  const { getBuffer, bufferUpdated } = protocol as Partial<BufferedProtocol>;
  return typeof getBuffer === "function" && typeof bufferUpdated === "function"
    ? protocol as BufferedProtocol
    : null;
}

/** Asks `protocol` for the buffer of the next read, and checks it can take one. */
export function receiveBuffer(protocol: BufferedProtocol, sizeHint: number): Uint8Array {
  const buffer = protocol.getBuffer(sizeHint);
  if (!(buffer instanceof Uint8Array) || buffer.length === 0) {
    const what = buffer instanceof Uint8Array ? "an empty Uint8Array" : typeof buffer;
    throw new TypeError(
      `getBuffer(${sizeHint}) returned ${what}. Return a Uint8Array of at least one byte.`,
    );
  }
  return buffer;
}

/**
 * Hands `data`, read into a transport's own buffer, to `protocol` through
 * its buffers: as many `getBuffer`/`bufferUpdated` rounds as it takes.
 */
export function copyIntoProtocol(protocol: BufferedProtocol, data: Uint8Array): void {
  const length = data.length;
  for (let offset = 0; offset < length;) {
    const target = receiveBuffer(protocol, length - offset);
    const n = Math.min(target.length, length - offset);
    target.set(n === length ? data : data.subarray(offset, offset + n));
    protocol.bufferUpdated(n);
    offset += n;
  }
}
