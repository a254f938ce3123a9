/**
 * How a server's graceful stop reaches the protocols of this module that
 * can finish a connection themselves: a protocol method under a symbol no
 * entry point exports, so it is not part of the `Protocol` API.
 *
 * When a server stops, each connection reads no more (what a read in flight
 * brings is still delivered), and a UDP server's socket takes no more
 * datagrams in. A protocol with `[lastRead]` is then told so, as it would
 * be told of the peer's end of input: the echo sends back what it kept
 * (`until` mode) and what its faults hold back (`--delay`, `--throttle`),
 * and the stream API ends its handler's input. It returns `true` when it
 * closes the connection (or socket) itself once that went out (as
 * `eofReceived` does), `false` to have it closed now, after what was
 * written. Any other protocol's connection is closed after what was
 * written, as asyncio's `Server.close()` does. The server's shutdown
 * timeout bounds both.
 *
 * @module
 */

/** The protocol's method: see the module documentation. */
export const lastRead: unique symbol = Symbol("lastRead");

/** A protocol that has it (this module's echo and stream API). */
export interface FinishesOnLastRead {
  [lastRead](): boolean;
}
