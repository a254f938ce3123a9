/**
 * The server program's log queue: it never waits, keeps at most its bound,
 * counts what it drops, and says so once when the output catches up.
 */

import { assert, assertEquals } from "@std/assert";
import { NonBlockingSink } from "../src/cli/_log_sink.ts";

/** An output whose writes wait until `release()`; it keeps what it was given. */
class StuckOutput {
  written = "";
  #waiting: (() => void)[] = [];
  write(bytes: Uint8Array): Promise<number> {
    return new Promise((resolve) => {
      this.#waiting.push(() => {
        this.written += new TextDecoder().decode(bytes);
        resolve(bytes.length);
      });
    });
  }
  release(): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const go of waiting) go();
  }
}

Deno.test("the log queue holds at most its bound, drops the rest, and says so once", async () => {
  const output = new StuckOutput();
  const sink = new NonBlockingSink(output, 100, (n) => `dropped ${n}\n`);
  for (let i = 0; i < 50; i++) sink.write(`line ${String(i).padStart(3, "0")}\n`); // 9 bytes each
  assert(sink.queued <= 100, `queued ${sink.queued}`);
  assertEquals(sink.dropped, 50 - 11);
  // The output catches up: what was kept goes out, in order, then one notice.
  for (let i = 0; i < 5; i++) {
    output.release();
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  await sink.flush(100);
  output.release();
  await sink.flush(100);
  const lines = output.written.trim().split("\n");
  assertEquals(
    lines.slice(0, 11),
    Array.from({ length: 11 }, (_, i) => `line 0${String(i).padStart(2, "0")}`),
  );
  assertEquals(lines.slice(11), ["dropped 39"]);
});

Deno.test("flushing a stuck log queue ends after its bound", async () => {
  const output = new StuckOutput();
  const sink = new NonBlockingSink(output, 1000, (n) => `dropped ${n}\n`);
  sink.write("waits forever\n");
  const started = performance.now();
  await sink.flush(50);
  assert(performance.now() - started < 1000);
  output.release();
  await sink.flush(50);
});
