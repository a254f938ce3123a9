/**
 * A monotonic clock in milliseconds, for what is read per request or per
 * wait: `clock_gettime(CLOCK_MONOTONIC)` through FFI on Linux, which costs
 * about 35 ns a call on this project's machines against
 * `performance.now()`'s 90 (an op into Deno's runtime). Elsewhere, or
 * without `--allow-ffi`, it is `performance.now()`.
 *
 * Its readings count from an origin of their own (the system's boot, on
 * Linux): only differences between two of its readings mean anything, and
 * never between one of its readings and `performance.now()`'s.
 *
 * @module
 */

import { CLOCK_MONOTONIC } from "./_constants.ts";
import { isLibc, loadLibc } from "./_libc.ts";

const libc = loadLibc();
const clockGettime = isLibc(libc) && libc.linux !== null ? libc.linux.clock_gettime : null;
/** `struct timespec` on 64-bit Linux, read as 32-bit words: seconds at 0, nanoseconds at 2. */
const timespec = new Uint32Array(4);

/**
 * Milliseconds on a clock that only goes forward, with sub-microsecond
 * precision; see the module documentation for its origin.
 */
export const monotonicMs: () => number = clockGettime === null ? () => performance.now() : () => {
  clockGettime(CLOCK_MONOTONIC, timespec);
  // Seconds since boot fit the low word for 136 years.
  return timespec[0] * 1000 + timespec[2] / 1_000_000;
};
