/**
 * How this module's echo answers a datagram with its own bytes without
 * copying them: a transport method under a symbol no entry point exports,
 * so it is not part of the `DatagramTransport` API.
 *
 * `transport[sendInPlace](protocol, data, to)` is `transport.send(data, to)`,
 * with one promise more from the caller: `protocol` does not change `data`
 * during its `datagramReceived` (after it, the view is not its to touch),
 * so the bytes stay as they were until the batch's answers are out. When
 * `protocol` is the transport's
 * own and `data` the view of the epoll socket's receive arena it was lent,
 * the socket then sends the bytes from where they were received, in the
 * batch's `sendmmsg`, instead of copying them into its send arena (the
 * arena is not read into again before the batch's answers are out). A
 * protocol that wraps the echo is the transport's protocol, the echo is not:
 * the wrapper may still change the bytes after the echo's call, so they are
 * copied, as `send` copies. A subclass of the echo may too, so the echo
 * calls this only as its own class.
 *
 * @module
 */

import type { DatagramProtocol } from "./protocol.ts";

/** The transport's method: see the module documentation. */
export const sendInPlace: unique symbol = Symbol("sendInPlace");

/** A transport that has it (this module's own). */
export interface SendsInPlace {
  [sendInPlace](protocol: DatagramProtocol, data: Uint8Array, to: Deno.NetAddr): void;
}
