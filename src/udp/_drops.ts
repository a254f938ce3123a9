/**
 * How a protocol of this module tells its datagram transport that it did
 * not send an answer, so the server counts the drop by reason: a method
 * under a symbol no entry point exports, so it is not part of the
 * `DatagramTransport` API.
 *
 * @module
 */

/** The transport's method that counts an answer too large to send (`DropCounts.tooLarge`). */
export const countTooLarge: unique symbol = Symbol("countTooLarge");

/** A transport that can count it (this module's own). */
export interface CountsTooLarge {
  [countTooLarge](): void;
}
