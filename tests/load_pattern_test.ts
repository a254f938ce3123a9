/**
 * The bench's check of a TCP echo against its message: it reads the echo
 * against itself one period back past its first period, so every way that
 * shortcut could pass a wrong echo is tried here, at every length the
 * check treats differently (a loop below 64 bytes, one comparison up to
 * 16 KiB, the periodic check past it), and from every place in a period.
 */

import { assert, assertEquals, assertFalse } from "@std/assert";
import { matchesPattern, patternOf, PERIOD } from "../src/load/_pattern.ts";

const LENGTHS = [1, 63, 64, 255, 256, 257, 511, 512, 16 * 1024, 16 * 1024 + 1, 100_000];
const message = patternOf(300_000);

/** The echo of `message[at, at + length)`, in a buffer of its own at offset `offset`. */
function echoOf(at: number, length: number, offset = 0): Uint8Array {
  const buffer = new Uint8Array(offset + length + 64);
  buffer.set(message.subarray(at, at + length), offset);
  return buffer.subarray(offset, offset + length);
}

Deno.test("the message repeats every period, and every byte value comes once in one", () => {
  for (let i = 0; i + PERIOD < message.length; i++) assertEquals(message[i], message[i + PERIOD]);
  assertEquals(new Set(message.subarray(0, PERIOD)).size, 256);
});

Deno.test("a right echo matches at every length and from every place in a period", () => {
  for (const length of LENGTHS) {
    for (const at of [0, 1, 7, 255, 256, 1000, 99_999]) {
      assert(matchesPattern(echoOf(at, length), at), `${length} bytes from ${at}`);
    }
  }
});

Deno.test("one wrong byte anywhere fails the check, at every length", () => {
  for (const length of LENGTHS) {
    const places = new Set([
      0,
      1,
      PERIOD - 1,
      PERIOD,
      PERIOD + 1,
      length >> 1,
      length - 2,
      length - 1,
    ]);
    for (const place of places) {
      if (place < 0 || place >= length) continue;
      for (const at of [0, 3, 300]) {
        const echo = echoOf(at, length);
        echo[place] ^= 0x01;
        assertFalse(matchesPattern(echo, at), `${length} bytes from ${at}, byte ${place} flipped`);
      }
    }
  }
});

Deno.test("an echo of the right bytes from the wrong place in the pattern fails", () => {
  for (const length of LENGTHS) {
    // Periodic like the message, so only its first period can tell: a byte dropped, or repeated.
    assertFalse(matchesPattern(echoOf(1, length), 0), `${length} bytes, one ahead`);
    assertFalse(matchesPattern(echoOf(0, length), 1), `${length} bytes, one behind`);
  }
});

Deno.test("a long echo whose later periods differ from its first, or all alike from the message, fails", () => {
  const length = 100_000;
  const echo = echoOf(0, length);
  // Its first period right, the rest shifted by one: every byte past the first period differs
  // from the one a period before it at the seam.
  echo.set(message.subarray(PERIOD + 1, length + 1), PERIOD);
  assertFalse(matchesPattern(echo, 0));
  // A second period that repeats the first except for its last byte.
  const other = echoOf(0, length);
  other[2 * PERIOD - 1] ^= 0x80;
  other.copyWithin(2 * PERIOD, PERIOD);
  assertFalse(matchesPattern(other, 0));
  // The same byte wrong in every period: periodic, so only the first period can tell.
  for (const place of [1, PERIOD - 1]) {
    for (const at of [0, 5]) {
      const everyPeriod = echoOf(at, length);
      for (let i = place; i < length; i += PERIOD) everyPeriod[i] ^= 0x01;
      assertFalse(matchesPattern(everyPeriod, at), `byte ${place} of every period from ${at}`);
    }
  }
});

Deno.test("echoes in several buffers and at several offsets are each checked against themselves", () => {
  const length = 50_000;
  // The check keeps a view of the last echo's buffer; one in another buffer, or at another place
  // in the same one, must never be read through it.
  const first = new Uint8Array(length + 1024);
  first.set(message.subarray(0, length));
  assert(matchesPattern(first.subarray(0, length), 0));
  first.fill(0xee); // the first buffer is reused for something else
  const second = echoOf(0, length);
  assert(matchesPattern(second, 0), "a right echo in a second buffer");
  second[40_000] ^= 0x01;
  assertFalse(matchesPattern(second, 0), "a wrong echo in a second buffer");
  const shared = new Uint8Array(2 * length + 512);
  shared.set(message.subarray(0, length), 0);
  assert(matchesPattern(shared.subarray(0, length), 0));
  shared.fill(0xee, 0, length);
  shared.set(message.subarray(0, length), 512);
  assert(matchesPattern(shared.subarray(512, 512 + length), 0), "a right echo further on");
  shared[512 + 30_000] ^= 0x01;
  assertFalse(matchesPattern(shared.subarray(512, 512 + length), 0), "a wrong echo further on");
});

Deno.test("a run lets go of the buffer of the last echo the check kept", async () => {
  // In a process of its own, whose collector the test can call.
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      new URL("_echo_buffer_release.ts", import.meta.url).pathname,
    ],
  }).output();
  assertEquals(code, 0, new TextDecoder().decode(stderr));
  const { checked, requests, alive } = JSON.parse(new TextDecoder().decode(stdout));
  assert(checked, "the echo did not pass the check");
  assert(requests > 0, "the run made no request");
  assertFalse(alive, "the buffer of the echo checked before the run is still held after it");
});
