/**
 * A bench worker (see `_workers.ts`): runs its share of the connections on
 * this worker's event loop, says how far it got about once a second, and
 * sends its report and latencies when done; a "stop" message ends its run
 * early, with a report, as the main thread's signal does. It tells the main
 * thread of its poller, which closes the poller's descriptors should this
 * worker be ended before it closed them itself.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { LatencyHistogram } from "./histogram.ts";
import { runHere } from "./run.ts";
import type { FromBenchWorker, ToBenchWorker } from "./_workers.ts";
import { closeIdlePoller, observePoller, waitOnMainThread } from "../poll/_poller.ts";
import { isolateThread } from "../poll/_reclaim.ts";

const controller = new AbortController();

observePoller((poller) =>
  self.postMessage(
    {
      type: "poller",
      epollFd: poller?.fd ?? -1,
      tag: poller?.tag ?? 0,
      eventMemory: poller?.eventMemory ?? null,
      thread: isolateThread(),
    } satisfies FromBenchWorker,
  )
);

self.onmessage = async (event: MessageEvent<ToBenchWorker>) => {
  const message = event.data;
  if (message.type === "stop") return controller.abort();
  const waits = message.mainThreadWaits;
  waitOnMainThread(waits !== null, waits?.spinMicroseconds);
  const latencies = new LatencyHistogram();
  const connects = new LatencyHistogram();
  const report = await runHere(
    {
      ...message.share,
      latencies,
      signal: controller.signal,
      onProgress: ({ requests, errors }) => {
        self.postMessage({ type: "progress", requests, errors } satisfies FromBenchWorker);
      },
    },
    message.percentiles,
    connects,
  );
  // Every connection is closed: the poller's own descriptors go too, before the worker does.
  await closeIdlePoller();
  self.postMessage(
    {
      type: "done",
      report,
      latencies: latencies.snapshot(),
      connects: connects.snapshot(),
    } satisfies FromBenchWorker,
  );
  self.close();
};
