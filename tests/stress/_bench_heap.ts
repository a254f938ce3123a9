/**
 * Runs `runBench` against `PORT` for `SECONDS` and prints, as one JSON line,
 * the report's request count and the live heap (after a full collection)
 * each second. Run with `--v8-flags=--expose-gc`.
 */

import { runBench } from "../../src/load/run.ts";

const [port, seconds] = Deno.args.map(Number);
const gc = (globalThis as unknown as { gc: () => void }).gc;
const heap: number[] = [];
const report = await runBench({
  hostname: "127.0.0.1",
  port,
  connections: 10,
  size: 100,
  durationMs: seconds * 1000,
  onProgress() {
    gc();
    heap.push(Deno.memoryUsage().heapUsed);
  },
});
console.log(JSON.stringify({ requests: report.requests, errors: report.errors, heap }));
