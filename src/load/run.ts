/**
 * A bench run: TCP or UDP load on an echo server, closed loop (each
 * connection sends the next message once the last one's echo is back) or
 * open loop (`rate` requests per second on schedule, a request whose
 * connection was still waiting for the last echo when it fell due counted
 * from when it was due, so a server that stalls shows in the percentiles
 * instead of slowing the load: the coordinated omission wrk2 and
 * HdrHistogram describe). A request sent by a timer counts from when the
 * timer fired: the timers (the poller's own, see `poll/_alarm.ts`) fire up
 * to about a millisecond late while the poller sleeps, and that lateness
 * is the client's, not the server's.
 *
 * @module
 */

import { connectTcp, type TlsConnectOptions } from "../tcp/client.ts";
import { getPoller } from "../poll/_poller.ts";
import { Alarm } from "../poll/_alarm.ts";
import { connectUdp } from "../udp/client.ts";
import { resolveHost } from "../sockets/_resolve.ts";
import { checkAddress, checkInteger } from "../_validate.ts";
import { formatAddress } from "../_address.ts";
import { LoadState, Schedule } from "./_state.ts";
import { reportOf } from "./report.ts";
import { runInWorkers } from "./_workers.ts";
import { LatencyHistogram, type LatencyReport } from "./histogram.ts";
import { TcpLoad } from "./_tcp_load.ts";
import { UDP_MIN_SIZE, UdpLoad } from "./_udp_load.ts";
import { patternOf, releaseEchoBuffer } from "./_pattern.ts";
import { monotonicMs } from "../libc/_clock.ts";

export type { LatencyReport } from "./histogram.ts";

/**
 * Options of {@linkcode runBench}.
 *
 * @example
 * ```ts
 * import type { BenchOptions } from "@x/echo/bench";
 *
 * const options: BenchOptions = {
 *   hostname: "127.0.0.1",
 *   port: 8888,
 *   connections: 10,
 *   size: 1000,
 *   durationMs: 5000,
 *   rate: 2000,
 * };
 * ```
 */
export interface BenchOptions {
  /** `"tcp"` (default) or `"udp"`. */
  transport?: "tcp" | "udp";
  /** Server address. */
  hostname: string;
  /** Server port. */
  port: number;
  /** Concurrent connections (UDP: sockets). */
  connections: number;
  /** Message size in bytes (UDP: at least 4, for the sequence number). */
  size: number;
  /**
   * Milliseconds to run, from the load's start: once every connection is
   * made or has failed (or connecting took this long; with `churn`, at
   * once), when every connection starts sending, and every schedule of an
   * open-loop run starts, at the same instant.
   */
  durationMs: number;
  /**
   * Requests per second over all connections, sent on schedule (open loop).
   * Default: none, closed loop.
   */
  rate?: number;
  /** The latency percentiles to report, from 0 to 100. Default `[50, 90, 99, 99.9, 99.99]`. */
  percentiles?: number[];
  /**
   * TCP: a new connection for each request, closed after its echo; the
   * report then gives the connections per second and the connect latency
   * apart from the echo's (`churn`). Closed loop only. Default `false`.
   */
  churn?: boolean;
  /**
   * TCP: begin each connection with a PROXY protocol header of this version
   * (1 or 2), naming its own addresses, as a load balancer would; for a
   * server that takes the PROXY protocol. Default: none.
   */
  sendProxy?: 1 | 2;
  /** TCP: connect to this Unix domain socket instead of `hostname:port` (Deno's sockets). */
  path?: string;
  /** TCP: connect over TLS (Deno's sockets); see `TlsConnectOptions`. */
  tls?: TlsConnectOptions;
  /** UDP: milliseconds after which an unanswered datagram counts as lost. Default 1000. */
  lossTimeoutMs?: number;
  /**
   * Where the latencies are recorded. Pass one to read more from it after
   * the run (the percentile-distribution text, a chart); it must be new.
   * Default: a new one.
   */
  latencies?: LatencyHistogram;
  /**
   * Event loops to run the connections on. Above 1, that many Web Workers
   * share the connections (and the rate) evenly, each with its own poller,
   * and their figures and latencies are merged into one report: for a
   * client one core cannot keep up with. At most `connections`. Default 1:
   * this event loop.
   */
  workers?: number;
  /** Ends the run early, with a report of what was measured until then. */
  signal?: AbortSignal;
  /** Called about once a second while running, with the round trips so far. */
  onProgress?: (progress: { seconds: number; requests: number; errors: number }) => void;
}

/**
 * What one bench run measured. `--json` prints exactly this object; its
 * fields only ever gain new ones (`schema` is 1).
 *
 * @example
 * ```ts
 * import type { BenchReport } from "@x/echo/bench";
 *
 * function summary(report: BenchReport): string {
 *   return `${report.requestsPerSecond.toFixed(0)} req/s, ` +
 *     `p99 ${report.latencyUs.percentiles["99"]} µs`;
 * }
 * ```
 */
export interface BenchReport {
  /** The version of this shape: 1. */
  schema: 1;
  /** The protocol loaded. */
  transport: "tcp" | "udp";
  /** Connections used (UDP: sockets). */
  connections: number;
  /** The event loops the connections ran on (see `BenchOptions.workers`). */
  workers: number;
  /** Message size in bytes. */
  size: number;
  /** `"closed"` (each connection waits for its echo) or `"open"` (requests on schedule). */
  loop: "closed" | "open";
  /** The requests per second asked for with `rate`; `null` in closed loop. */
  targetRate: number | null;
  /** Seconds measured: the duration, or less when the run was stopped early. */
  seconds: number;
  /** Round trips completed. */
  requests: number;
  /** Round trips per second: the rate achieved. */
  requestsPerSecond: number;
  /** Echoed payload per second, in MiB. */
  mibPerSecond: number;
  /**
   * Round-trip latency in microseconds, from an HdrHistogram with three
   * significant digits; in open loop counted from when each request was due.
   * `percentiles` is keyed by each percentile's shortest form (`"99.9"`; see
   * {@linkcode LatencyReport}).
   */
  latencyUs: LatencyReport;
  /** Error events: failed connections, socket errors and wrong answers. */
  errors: number;
  /** Each distinct error message once, with how often it came, the most frequent first. */
  errorMessages: { message: string; count: number }[];
  /** Answers that differ from what was sent. */
  wrongAnswers: number;
  /**
   * Requests neither counted nor lost when the run ended: those in flight,
   * and in open loop also those that had fallen due but were not yet sent;
   * with `churn`, also those whose connect was under way (the connection,
   * once made, is closed unused).
   */
  unfinished: number;
  /**
   * UDP: datagrams sent; lost (no echo ever, within the loss timeout or
   * after it); late (echoed after their timeout); duplicates; reordered
   * (echoed after a later datagram's echo). A datagram answered with other
   * bytes counts in `wrongAnswers`, not as lost. `null` for TCP.
   */
  udp: { sent: number; lost: number; late: number; duplicates: number; reordered: number } | null;
  /**
   * With `churn`: the connections made (one per request, those made while
   * the run stopped included: their requests count as `unfinished`); the
   * rate of those made by the stop over the measured period; and how long
   * each connect took, apart from the echo's latency. `null` otherwise.
   */
  churn: { connections: number; connectionsPerSecond: number; connectUs: LatencyReport } | null;
}

/**
 * The percentiles reported when none are asked for.
 *
 * @example
 * ```ts
 * import { DEFAULT_PERCENTILES } from "@x/echo/bench";
 *
 * console.log(DEFAULT_PERCENTILES.join(",")); // "50,90,99,99.9,99.99"
 * ```
 */
export const DEFAULT_PERCENTILES: readonly number[] = [50, 90, 99, 99.9, 99.99];

/** How often unanswered datagrams are checked for loss, in milliseconds. */
const LOSS_CHECK_MS = 20;

/**
 * Runs the load and returns the report. The connections are made first;
 * the load starts once all are made (see `BenchOptions.durationMs`). The
 * run ends `durationMs` after that (or
 * when `signal` aborts, or when every connection has failed): requests in
 * flight then are counted as unfinished, every connection is closed, and the
 * report covers what completed.
 *
 * @example
 * ```ts ignore
 * import { runBench } from "@x/echo/bench";
 *
 * const report = await runBench({ hostname: "127.0.0.1", port: 8888, connections: 4, size: 100, durationMs: 1000 });
 * console.log(report.requestsPerSecond);
 * ```
 *
 * @throws {RangeError} for an option out of range, before any connection is made.
 */
export async function runBench(options: BenchOptions): Promise<BenchReport> {
  const { connections, size, durationMs, transport = "tcp" } = options;
  checkInteger("connections", connections, 1, 1_000_000);
  checkInteger("size", size, 1, 1 << 30);
  checkInteger("durationMs", durationMs, 1, 86_400_000);
  if (transport === "udp" && size < UDP_MIN_SIZE) {
    throw new RangeError(
      `Cannot send UDP datagrams of ${size} bytes: each carries a ${UDP_MIN_SIZE}-byte sequence ` +
        `number, which tells a late echo from an answer; use a size of at least ${UDP_MIN_SIZE}`,
    );
  }
  const percentiles = options.percentiles ?? DEFAULT_PERCENTILES;
  for (const p of percentiles) {
    if (!(p > 0 && p <= 100)) {
      throw new RangeError(
        `Cannot report percentile ${p}: a percentile is above 0 and at most 100`,
      );
    }
  }
  if (options.rate !== undefined && !(options.rate > 0 && Number.isFinite(options.rate))) {
    throw new RangeError(
      `Cannot send at rate ${options.rate}: the rate must be a finite number above 0`,
    );
  }
  checkAddress(options.hostname, options.port, 1);
  if (options.lossTimeoutMs !== undefined) {
    checkInteger("lossTimeoutMs", options.lossTimeoutMs, 1, 3_600_000);
  }
  if (options.sendProxy !== undefined && transport === "udp") {
    throw new TypeError(
      `Cannot send a PROXY header over UDP: sendProxy is for TCP only; drop it`,
    );
  }
  if ((options.path !== undefined || options.tls !== undefined) && transport === "udp") {
    throw new TypeError(
      `Cannot load UDP ${options.path !== undefined ? "on a Unix socket" : "over TLS"}: ` +
        `path and tls are for TCP only; drop them`,
    );
  }
  if (options.churn && (transport === "udp" || options.rate !== undefined)) {
    throw new RangeError(
      `Cannot churn ${transport === "udp" ? "over UDP" : "at a rate"}: churn makes a TCP ` +
        `connection per request, in closed loop; drop ${transport === "udp" ? "churn" : "rate"}`,
    );
  }
  const workers = options.workers ?? 1;
  checkInteger("workers", workers, 1, 1024);
  if (workers > connections) {
    throw new RangeError(
      `Cannot run ${workers} workers with ${connections} connections: each worker needs at ` +
        `least one; use at most ${connections} workers, or more connections`,
    );
  }
  if (workers > 1) return await runInWorkers(options, workers, percentiles);
  return await runHere(options, percentiles, new LatencyHistogram());
}

/**
 * The run of {@linkcode runBench} on this event loop, its options already
 * checked; `connects` records the churn's connect latencies (a worker sends
 * them on, to be merged).
 */
export async function runHere(
  options: BenchOptions,
  percentiles: readonly number[],
  connects: LatencyHistogram,
): Promise<BenchReport> {
  const { connections, durationMs, transport = "tcp" } = options;
  const lossTimeoutMs = options.lossTimeoutMs ?? 1000;
  const start = monotonicMs();
  const state = new LoadState(
    options.rate === undefined ? null : new Schedule(options.rate, connections),
    options.latencies ?? new LatencyHistogram(),
    connections,
  );
  const stopped = new Promise<void>((resolve) => state.onStop(resolve));
  // The load starts once every connection is made or has failed, or once connecting has taken
  // as long as the run itself (connections made later join the schedule then, their requests
  // past due counted from when they were due); the duration counts from there. With churn,
  // connecting is the load: it starts at once.
  //
  // Both timers are Alarms: Deno's own wait for its event loop's turns, which a busy poller gives
  // every 10 ms and at times holds back for hundreds of milliseconds. The poller is made first,
  // so that they are its own.
  getPoller();
  const stopTimer = new Alarm(() => state.stop());
  const startLoad = () => {
    if (state.started || state.stopping) return;
    state.start(monotonicMs());
    stopTimer.setIn(durationMs);
  };
  const allowance = new Alarm(startLoad);
  allowance.setIn(durationMs);
  const abort = () => state.stop();
  options.signal?.addEventListener("abort", abort);
  if (options.signal?.aborted) state.stop();
  const progress = options.onProgress && setInterval(() => {
    options.onProgress!({
      seconds: Math.round((monotonicMs() - (state.started ? state.startedAt : start)) / 1000),
      requests: state.requests,
      errors: state.errors.total,
    });
  }, 1000);

  // The name is resolved once, here: a name that does not resolve is one error, not one per
  // connection, and connections do not each wait on a lookup.
  let hostname = options.hostname;
  try {
    // A slow resolver must not keep the run past its duration, nor a Ctrl-C waiting.
    const resolved = options.path !== undefined ? undefined : await Promise.race([
      resolveHost(transport, options.hostname, options.port),
      stopped,
    ]);
    if (resolved !== undefined) hostname = resolved.hostname;
  } catch (error) {
    state.errors.add(error);
    state.stop();
  }
  const { path, tls } = options;
  const where = path !== undefined
    ? formatAddress({ transport: "unix", path })
    : formatAddress({ transport, hostname, port: options.port });
  // TCP on the epoll backend where it runs, as the server does: its per-request path is the fast
  // one. Unix sockets and TLS run on Deno's sockets only.
  const backend = typeof getPoller() === "string" || path !== undefined || tls !== undefined
    ? "deno"
    : "epoll";
  const message = patternOf(options.size);
  let connected = 0;
  /** Churn: the connects completed by the stop, over which the rate is taken. */
  let connectedInTime = 0;
  const ends: Promise<void>[] = [];
  const udpLoads: UdpLoad[] = [];
  let lossCheck: ReturnType<typeof setInterval> | undefined;
  if (transport === "udp") {
    lossCheck = setInterval(() => {
      const now = monotonicMs();
      for (const load of udpLoads) load.checkLoss(now);
    }, LOSS_CHECK_MS);
  }
  // Each connection ends when it fails or the run stops; when all have failed, the run stops.
  let open = connections;
  const ended = () => {
    if (--open === 0) state.stop();
  };
  // Connections not yet made or failed: the load starts when none is left.
  let connecting = options.churn ? 0 : connections;
  if (connecting === 0) startLoad();
  for (let i = 0; i < connections && !state.stopping; i++) {
    let settled = options.churn === true; // churn waits for no connect
    const settle = () => {
      if (settled) return;
      settled = true;
      if (--connecting === 0) startLoad();
    };
    ends.push((async () => {
      try {
        if (transport === "udp") {
          // Each socket sends its own copy: numbers are written into it.
          const { protocol } = await connectUdp(
            { hostname, port: options.port },
            () => new UdpLoad(state, message.slice(), i, lossTimeoutMs, where),
          );
          udpLoads.push(protocol);
          settle();
          await protocol.lost;
        } else if (options.churn) {
          // A new connection per request: the connect timed on its own, then one echo.
          while (!state.stopping) {
            const started = monotonicMs();
            const { protocol } = await connectTcp(
              { hostname, port: options.port, backend, sendProxy: options.sendProxy, path, tls },
              () => new TcpLoad(state, message, i, true),
            );
            // Until connectionMade: not the first request's write, which follows in it.
            connects.recordMs(protocol.connectedAt - started);
            connected++;
            // Made by the stop: the rate counts it.
            if (!state.stopping || protocol.connectedAt <= state.stoppedAt) {
              connectedInTime++;
            }
            // A connect that sent nothing (the run stopped before its connectionMade, or before
            // its first send) was a request under way: the server has its connection, so the
            // report counts both. One that sent its request is counted by then: answered, or
            // unfinished at the stop.
            if (!protocol.requested) state.unfinished++;
            await protocol.lost;
            if (protocol.failed) break;
          }
        } else {
          const { protocol } = await connectTcp(
            { hostname, port: options.port, backend, sendProxy: options.sendProxy, path, tls },
            () => new TcpLoad(state, message, i, false),
          );
          settle();
          await protocol.lost;
        }
      } catch (error) {
        if (!state.stopping) state.errors.add(error);
      } finally {
        ended();
        settle(); // after `ended`: a run whose connections all failed stops, never starts
      }
    })());
  }
  await stopped;
  // The measured period: from the load's start (the run's, when stopped before it) to the stop,
  // not to the end of closing the connections (tens of milliseconds at 1,000).
  const seconds = (state.stoppedAt - (state.started ? state.startedAt : start)) / 1000;
  allowance.clear();
  stopTimer.clear();
  clearInterval(progress);
  clearInterval(lossCheck);
  options.signal?.removeEventListener("abort", abort);
  // Every connection was aborted by the stop; connections still being made end as they come.
  let grace: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    Promise.all(ends),
    new Promise((resolve) => grace = setTimeout(resolve, 1000)),
  ]);
  clearTimeout(grace);
  releaseEchoBuffer();
  return reportOf(state, options, 1, seconds, percentiles, {
    connected,
    connectedInTime,
    connects,
  });
}
