/**
 * The message a bench run sends, and the checks of its echo: libc's
 * `memcmp` where FFI works (many times faster than a loop over a 100 KB
 * echo), a loop elsewhere.
 *
 * The message repeats every {@linkcode PERIOD} bytes, and a TCP echo is
 * checked through that: its first period against the pattern, every later
 * byte against the byte one period before it in the echo itself. That is
 * the same as comparing it with the message (by induction, byte `i` equals
 * byte `i mod 256`, which equals the message's), but it reads the echo
 * once and the message not at all: the second pointer reads what the
 * first brought into the cache 256 bytes earlier. A 100,000-byte echo is
 * checked in 1.2 µs instead of 1.9; against comparing it with the message,
 * `./bench` made 6 to 8% more requests a second at 100,000 bytes and 10
 * connections (BENCHMARKS.md).
 *
 * @module
 */

import { isLibc, loadLibc } from "../libc/_libc.ts";

const libc = loadLibc();
const memcmp = isLibc(libc) ? libc.symbols.memcmp : null;

/** How often the message repeats, in bytes. */
export const PERIOD = 256;

/** The pattern's byte `i`. An odd multiplier: every byte value once per period. */
function patternByte(i: number): number {
  return (i * 31 + 7) & 0xff;
}

/** The message every round trip of a run of `size`-byte messages sends: a wrong byte shows. */
export function patternOf(size: number): Uint8Array {
  const message = new Uint8Array(size);
  for (let i = 0; i < size; i++) message[i] = patternByte(i);
  return message;
}

/**
 * Echoes up to this long are compared with the pattern in one call: they
 * sit in the first-level cache, where reading the pattern costs nothing.
 */
const REFERENCE_LENGTH = 16 * 1024;
/** The pattern from each of its offsets in a period on, `REFERENCE_LENGTH` bytes each. */
const references: Uint8Array[] = [];
{
  const reference = patternOf(REFERENCE_LENGTH + PERIOD);
  for (let offset = 0; offset < PERIOD; offset++) references.push(reference.subarray(offset));
}
const PERIOD_SIZE = BigInt(PERIOD);

/**
 * The echo's bytes past its first period: a view of its buffer, kept while
 * echoes arrive in the same buffer at the same place (the poller's read
 * buffer), so checking one allocates nothing. It keeps that one buffer
 * alive until an echo comes in another, or {@linkcode releaseEchoBuffer}.
 */
const NO_TAIL = new Uint8Array(0);
let tail: Uint8Array = NO_TAIL;
let tailBuffer: ArrayBufferLike | null = null;
let tailOffset = -1;

/**
 * Lets go of the buffer of the last echo checked (see `tail`): at the end
 * of a run, so a program that ran one does not keep the read buffer of a
 * connection it closed (up to megabytes) for as long as it lives.
 */
export function releaseEchoBuffer(): void {
  tail = NO_TAIL;
  tailBuffer = null;
  tailOffset = -1;
}

/**
 * `length` as a `usize` argument; the last one is kept, as reads of one
 * length follow each other. A cache of its own, not `sizeArgument`'s: the
 * sends and reads between two checks have other lengths, and one shared
 * last length would make a bigint on nearly every call.
 */
let lastLength = -1;
let lastSize = 0n;
function sizeOf(length: number): bigint {
  if (length !== lastLength) {
    lastLength = length;
    lastSize = BigInt(length);
  }
  return lastSize;
}

/**
 * Whether `data` holds the bytes of {@linkcode patternOf}'s message from
 * byte `at` on (the message's length does not matter: it is one pattern).
 */
export function matchesPattern(data: Uint8Array, at: number): boolean {
  const n = data.length;
  const reference = references[at % PERIOD];
  if (memcmp === null || n < 64) {
    for (let i = 0; i < n; i++) {
      if (data[i] !== patternByte(at + i)) return false;
    }
    return true;
  }
  if (n <= REFERENCE_LENGTH) return memcmp(data, reference, sizeOf(n)) === 0;
  if (memcmp(data, reference, PERIOD_SIZE) !== 0) return false;
  if (data.buffer !== tailBuffer || data.byteOffset !== tailOffset) {
    tailBuffer = data.buffer;
    tailOffset = data.byteOffset;
    tail = new Uint8Array(data.buffer, data.byteOffset + PERIOD);
  }
  return memcmp(tail, data, sizeOf(n - PERIOD)) === 0;
}

/** Whether `data` holds the bytes of `message` from `at` on: any message. */
export function sameBytes(data: Uint8Array, message: Uint8Array, at: number): boolean {
  const n = data.length;
  if (memcmp !== null && n >= 64) {
    return memcmp(data, at === 0 ? message : message.subarray(at), sizeOf(n)) === 0;
  }
  for (let i = 0; i < n; i++) {
    if (data[i] !== message[at + i]) return false;
  }
  return true;
}
