/**
 * How the servers of one listener in several event loops (the server
 * program's workers, each with a socket of its own on the port) hold
 * `maxConnections` together: an option under a symbol no entry point
 * exports, so it is not part of the servers' API. It is a counter of the
 * connections open in all of them, in memory they share
 * (`SharedArrayBuffer`); each server takes a place in it before it serves a
 * connection, gives the place back when the connection closes, and refuses
 * the connection when the places were all taken.
 *
 * @module
 */

/** The option: the shared counter, an `Int32Array` of one element (see {@linkcode sharedCounter}). */
export const sharedConnections: unique symbol = Symbol("sharedConnections");

/** Options that may carry {@linkcode sharedConnections}. */
export interface WithSharedConnections {
  [sharedConnections]?: Int32Array;
}

/** A counter, at 0, that event loops given its array (it survives `postMessage`) share. */
export function sharedCounter(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
}

/** Takes a place in `counter` unless `max` are taken; `false` (and none taken) then. */
export function takePlace(counter: Int32Array, max: number): boolean {
  if (Atomics.add(counter, 0, 1) < max) return true;
  Atomics.sub(counter, 0, 1);
  return false;
}

/** Gives back a place {@linkcode takePlace} took. */
export function givePlace(counter: Int32Array): void {
  Atomics.sub(counter, 0, 1);
}
