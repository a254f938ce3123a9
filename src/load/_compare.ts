/**
 * Comparing an echo with what was sent: libc's `memcmp` where FFI works
 * (many times faster than a loop over a 100 KB echo), a loop elsewhere.
 *
 * @module
 */

import { isLibc, loadLibc, sizeArgument } from "../libc/_libc.ts";

const libc = loadLibc();
const memcmp = isLibc(libc) ? libc.symbols.memcmp : null;

/** Whether `data` holds the bytes of `message` from `at` on. */
export function sameBytes(data: Uint8Array, message: Uint8Array, at: number): boolean {
  const n = data.length;
  if (memcmp !== null && n >= 64) {
    return memcmp(data, at === 0 ? message : message.subarray(at), sizeArgument(n)) === 0;
  }
  for (let i = 0; i < n; i++) {
    if (data[i] !== message[at + i]) return false;
  }
  return true;
}
