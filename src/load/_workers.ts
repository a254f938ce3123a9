/**
 * A bench run over several event loops: Web Workers, each running its share
 * of the connections (and of the rate) as `runBench` runs them on one event
 * loop, with its own poller; their counts are summed, their error messages
 * tallied together and their latencies merged, into one report. For a
 * client that one core cannot keep up with.
 *
 * A worker runs `_bench_worker.ts`; the messages between the two are typed
 * here. A worker that does not report in time is ended, and the
 * descriptors its poller still held are closed from here (see
 * `poll/_reclaim.ts`): they belong to the process, and would outlive it.
 *
 * @module
 */

import type { BenchOptions, BenchReport } from "./run.ts";
import { ErrorTally } from "./_state.ts";
import { LatencyHistogram, type LatencySnapshot } from "./histogram.ts";
import { reportOf } from "./report.ts";
import { type EpollLibc, mainThreadWaitSettings } from "../poll/_poller.ts";
import { type IsolateThread, reclaimPollerDescriptors, whenThreadEnds } from "../poll/_reclaim.ts";
import { loadLibc } from "../libc/_libc.ts";
import { monotonicMs } from "../libc/_clock.ts";

/** The options a worker runs its share with: those `postMessage` can carry. */
export type WorkerShare = Omit<BenchOptions, "latencies" | "signal" | "onProgress" | "workers">;

/** What the main thread tells a bench worker. */
export type ToBenchWorker =
  | {
    type: "start";
    share: WorkerShare;
    percentiles: readonly number[];
    /** The main thread's `mainThreadWaitSettings()`: the worker's waits do the same. */
    mainThreadWaits: { spinMicroseconds: number } | null;
  }
  | { type: "stop" };

/** What a bench worker tells the main thread. */
export type FromBenchWorker =
  | {
    type: "poller";
    /** The epoll descriptor of the worker's poller, or -1 once it closed it. */
    epollFd: number;
    /** Its poller's `tag` (see `_reclaim.ts`), or 0. */
    tag: number;
    /** The memory its waits write into (see `Poller.eventMemory`), or `null`. */
    eventMemory: SharedArrayBuffer | null;
    /** The worker's thread: it must have ended before the poller's descriptors are closed. */
    thread: IsolateThread | null;
  }
  | { type: "progress"; requests: number; errors: number }
  | { type: "done"; report: BenchReport; latencies: LatencySnapshot; connects: LatencySnapshot };

/**
 * How long past the duration a worker may take to report before it is
 * ended and counted as failed: its own run ends within about a second of
 * the duration (its grace for connections still being made). The duration
 * counts from when its connections are made, which may take as long again:
 * the wait allows for that too.
 */
const REPORT_GRACE_MS = 10_000;

/**
 * How long a worker that was ended may take to stop running: one whose
 * JavaScript never goes back to its event loop does not stop, and its
 * descriptors are then left open rather than closed under it.
 */
const ENDING_MS = 5_000;

/**
 * The memory the waits of ended workers' pollers write into. A wait blocked
 * on another thread when its worker was ended writes there when it returns
 * (the reclaim wakes it), after the worker is gone: so it is kept for the
 * life of the process, a few kilobytes for each worker that had to be ended.
 */
const keptEventMemory: SharedArrayBuffer[] = [];

/** What tests change of a run on workers: a real run uses the defaults. */
export interface WorkerRunSettings {
  /** The worker module: `_bench_worker.ts`. */
  module?: URL;
  /** How long past the duration a worker may take to report: {@linkcode REPORT_GRACE_MS}. */
  graceMs?: number;
  /** How long an ended worker may take to stop running: {@linkcode ENDING_MS}. */
  endingMs?: number;
}

/**
 * Runs `options` (already checked) on `count` workers and merges their
 * reports. Connections are shared as evenly as they divide (the first
 * workers take one more), the rate in proportion to them.
 */
export async function runInWorkers(
  options: BenchOptions,
  count: number,
  percentiles: readonly number[],
  settings: WorkerRunSettings = {},
): Promise<BenchReport> {
  const {
    module = new URL("./_bench_worker.ts", import.meta.url),
    graceMs = REPORT_GRACE_MS,
    endingMs = ENDING_MS,
  } = settings;
  const { connections, latencies: _latencies, signal, onProgress, workers: _workers, ...rest } =
    options;
  const start = monotonicMs();
  const latencies = options.latencies ?? new LatencyHistogram();
  const connects = new LatencyHistogram();
  const errors = new ErrorTally();
  const reports: BenchReport[] = [];
  const progress = Array.from({ length: count }, () => ({ requests: 0, errors: 0 }));
  const pool: Worker[] = [];
  /** Each worker's poller: its epoll descriptor and wait memory, until it closes it. */
  const pollers = Array.from(
    { length: count },
    () => ({
      epollFd: -1,
      tag: 0,
      eventMemory: null as SharedArrayBuffer | null,
      thread: null as IsolateThread | null,
    }),
  );
  const finished: Promise<void>[] = [];
  /** Which workers reported or failed: the others are counted as not reporting. */
  const settled: boolean[] = new Array(count).fill(false);
  const mainThreadWaits = mainThreadWaitSettings();
  for (let k = 0; k < count; k++) {
    const share = Math.floor(connections / count) + (k < connections % count ? 1 : 0);
    const worker = new Worker(module, {
      type: "module",
      name: `@x/echo bench worker ${k}`,
    });
    pool.push(worker);
    finished.push(
      new Promise<void>((resolve) => {
        worker.onmessage = (event: MessageEvent<FromBenchWorker>) => {
          const message = event.data;
          if (message.type === "poller") {
            pollers[k] = message;
            return;
          }
          if (message.type === "progress") {
            progress[k] = message;
            return;
          }
          settled[k] = true;
          reports.push(message.report);
          latencies.add(LatencyHistogram.fromSnapshot(message.latencies));
          connects.add(LatencyHistogram.fromSnapshot(message.connects));
          resolve();
        };
        worker.onerror = (event: ErrorEvent) => {
          event.preventDefault();
          settled[k] = true;
          errors.add(`Cannot run bench worker ${k}: ${event.message}`);
          resolve();
        };
      }),
    );
    worker.postMessage(
      {
        type: "start",
        share: {
          ...rest,
          connections: share,
          rate: options.rate === undefined ? undefined : (options.rate * share) / connections,
        },
        percentiles,
        mainThreadWaits,
      } satisfies ToBenchWorker,
    );
  }
  const stop = () => {
    for (const worker of pool) worker.postMessage({ type: "stop" } satisfies ToBenchWorker);
  };
  signal?.addEventListener("abort", stop);
  if (signal?.aborted) stop();
  const ticker = onProgress && setInterval(() => {
    let requests = 0;
    let failures = 0;
    for (const figures of progress) {
      requests += figures.requests;
      failures += figures.errors;
    }
    onProgress({
      seconds: Math.round((monotonicMs() - start) / 1000),
      requests,
      errors: failures,
    });
  }, 1000);
  let deadline: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<void>((resolve) => {
    // Connecting may take up to the duration, before the duration itself (see run.ts).
    deadline = setTimeout(resolve, 2 * options.durationMs + graceMs);
  });
  try {
    await Promise.race([Promise.all(finished), late]);
  } finally {
    clearTimeout(deadline);
    clearInterval(ticker);
    signal?.removeEventListener("abort", stop);
    for (const worker of pool) worker.terminate();
  }
  const missing = settled.filter((done) => !done).length;
  if (missing > 0) {
    errors.addCount(
      `Cannot read the report of a bench worker: none came within twice the duration ` +
        `(connecting, then the load) and ${graceMs / 1000} s more`,
      missing,
    );
  }
  // A worker that reported closed its poller first; one ended here may not have. Its
  // descriptors are closed once its thread has ended (see poll/_reclaim.ts).
  await Promise.all(pollers.map(async ({ epollFd, tag, eventMemory, thread }, k) => {
    if (epollFd < 0) return;
    if (eventMemory !== null) keptEventMemory.push(eventMemory);
    const cannot = (why: unknown) =>
      errors.add(
        `Cannot close the descriptors of bench worker ${k}: ${
          why instanceof Error ? why.message : why
        }; its sockets stay open until the process ends`,
      );
    try {
      if (thread !== null && !await whenThreadEnds(thread, endingMs)) {
        return cannot(`it still runs ${endingMs / 1000} s after it was ended`);
      }
      reclaimPollerDescriptors(loadLibc() as EpollLibc, epollFd, tag);
    } catch (error) {
      cannot(error);
    }
  }));
  return merged(reports, options, count, percentiles, latencies, connects, errors, start);
}

/** One report of the workers' `reports`, their latencies merged already. */
function merged(
  reports: BenchReport[],
  options: BenchOptions,
  count: number,
  percentiles: readonly number[],
  latencies: LatencyHistogram,
  connects: LatencyHistogram,
  errors: ErrorTally,
  start: number,
): BenchReport {
  const udp = { sent: 0, lost: 0, late: 0, duplicates: 0, reordered: 0 };
  let requests = 0;
  let wrong = 0;
  let unfinished = 0;
  let connected = 0;
  // The connects each worker made by its stop: its rate times its own measured period.
  let connectedInTime = 0;
  // The run lasted as long as its longest share (each measures its own from its start).
  let seconds = 0;
  for (const report of reports) {
    requests += report.requests;
    wrong += report.wrongAnswers;
    unfinished += report.unfinished;
    seconds = Math.max(seconds, report.seconds);
    for (const { message, count } of report.errorMessages) errors.addCount(message, count);
    if (report.udp !== null) {
      for (const key of Object.keys(udp) as (keyof typeof udp)[]) udp[key] += report.udp[key];
    }
    if (report.churn !== null) {
      connected += report.churn.connections;
      connectedInTime += report.churn.connectionsPerSecond * report.seconds;
    }
  }
  if (reports.length === 0) seconds = (monotonicMs() - start) / 1000;
  return reportOf(
    { latencies, errors, requests, wrong, unfinished, udp },
    options,
    count,
    seconds,
    percentiles,
    { connected, connectedInTime, connects },
  );
}
