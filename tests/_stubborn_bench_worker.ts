/**
 * A bench worker that hangs, as `_hung_bench_worker.ts` does, and once its
 * connections are open runs microtasks for 3 s (see
 * `fixtures/_keep_running.ts`), so that when the main thread ends it for
 * not reporting, it goes on running, and watching its descriptors, for a
 * while. Its marks go to the directory named by `ECHO_STUBBORN_DIR`: `loaded`
 * once its module has loaded, then those of `keepRunning`.
 */

/// <reference lib="deno.worker" />

import "./_hung_bench_worker.ts";
import type { ToBenchWorker } from "../src/load/_workers.ts";
import { keepRunning, pollerDescriptors } from "./fixtures/_keep_running.ts";

Deno.writeTextFileSync(`${Deno.env.get("ECHO_STUBBORN_DIR")}/loaded`, "");

const run = self.onmessage as (event: MessageEvent<ToBenchWorker>) => void;
self.onmessage = async (event: MessageEvent<ToBenchWorker>) => {
  run(event);
  const message = event.data;
  if (message.type !== "start") return;
  // Its instance, its eventfd and one socket per connection.
  while (pollerDescriptors().length < 2 + message.share.connections) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await keepRunning(3_000, Deno.env.get("ECHO_STUBBORN_DIR")!);
};
