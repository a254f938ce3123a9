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

/**
 * The transport's method that counts a datagram left unanswered by a
 * protocol on purpose (`DropCounts.injected`), for want of room where it
 * held its answers (`DropCounts.overflow`), or because its answer would be
 * larger than the datagram (`DropCounts.amplification`).
 */
export const countDropped: unique symbol = Symbol("countDropped");

/** Why {@linkcode countDropped} was called. */
export type DropReason = "injected" | "overflow" | "amplification";

/** A transport that can count them (this module's own). */
export interface CountsTooLarge {
  [countTooLarge](): void;
  [countDropped](reason: DropReason): void;
}
