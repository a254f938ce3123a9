/**
 * Case 8, the bench's own memory over a long run: 60 seconds
 * (BENCH_SOAK_SECONDS to change it) of closed-loop load on the server by the
 * bench's engine, its live heap measured after a full collection each
 * second. Latencies go into a histogram of fixed size, so the bench holds
 * nothing per request: the heap a third of the way in and at the end must be
 * the same to within a MiB over millions of round trips (an array of every
 * latency grows by 8 bytes each: tens of MiB here).
 */

import { assert } from "@std/assert";
import { figure, mib, WatchedServer } from "./_harness.ts";

const SECONDS = Number(Deno.env.get("BENCH_SOAK_SECONDS") ?? 60);
/** Live heap growth between a third of the way and the end that counts as memory held per request. */
const SLACK = 1024 * 1024;

Deno.test(`stress: the bench's memory is flat over a ${SECONDS} s run`, async () => {
  await using server = await new WatchedServer(["--log-level", "warning"]).ready();
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      new URL("_bench_heap.ts", import.meta.url).pathname,
      String(server.port),
      String(SECONDS),
    ],
  }).output();
  assert(code === 0, new TextDecoder().decode(stderr));
  const { requests, errors, heap } = JSON.parse(new TextDecoder().decode(stdout));
  const third = heap[Math.floor(heap.length / 3)];
  const end = heap[heap.length - 1];
  figure("bench memory", {
    seconds: SECONDS,
    requests,
    heap_third_mib: mib(third),
    heap_end_mib: mib(end),
  });
  assert(errors === 0, `${errors} errors`);
  assert(requests > SECONDS * 1000, `only ${requests} requests`);
  assert(
    end - third < SLACK,
    `the bench's live heap grew from ${mib(third)} to ${mib(end)} MiB over ${requests} requests`,
  );
});
