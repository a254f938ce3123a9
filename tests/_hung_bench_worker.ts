/**
 * A bench worker that hangs: the real one (`src/load/_bench_worker.ts`),
 * told to run for an hour and deaf to "stop", so it never reports and
 * keeps its sockets open until it is ended. For the test that the main
 * thread closes what such a worker held.
 */

/// <reference lib="deno.worker" />

import "../src/load/_bench_worker.ts";
import type { ToBenchWorker } from "../src/load/_workers.ts";

const run = self.onmessage as (event: MessageEvent<ToBenchWorker>) => void;
self.onmessage = (event: MessageEvent<ToBenchWorker>) => {
  const message = event.data;
  if (message.type === "stop") return;
  run(
    new MessageEvent("message", {
      data: { ...message, share: { ...message.share, durationMs: 3_600_000 } },
    }),
  );
};
