/**
 * Run with `--v8-flags=--expose-gc` (by `load_pattern_test.ts`): checks a
 * 100,000-byte echo in a buffer of its own, so that the check keeps that
 * buffer (see `tail` in `src/load/_pattern.ts`), lets go of it, then runs
 * `runBench` for 200 ms with 100-byte messages (which never replace what
 * the check keeps), and prints whether the buffer is still alive after a
 * full collection: `{"checked": true, "alive": false}` when the run let go
 * of it.
 */

import { matchesPattern, patternOf } from "../src/load/_pattern.ts";
import { runBench } from "../src/load/run.ts";
import { serveEcho } from "../src/echo/serve.ts";

const gc = (globalThis as unknown as { gc: () => void }).gc;
let buffer: Uint8Array | null = patternOf(100_000);
const held = new WeakRef(buffer.buffer);
const checked = matchesPattern(buffer, 0);
buffer = null;

const server = serveEcho({ hostname: "127.0.0.1", port: 0 });
const report = await runBench({
  hostname: "127.0.0.1",
  port: server.addr.port,
  connections: 2,
  size: 100,
  durationMs: 200,
});
await server.shutdown();
// A WeakRef's target lives to the end of the task that made or read it: collect in a later one.
await new Promise((resolve) => setTimeout(resolve, 0));
gc();
console.log(
  JSON.stringify({ checked, requests: report.requests, alive: held.deref() !== undefined }),
);
