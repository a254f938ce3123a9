/**
 * The echo load program: closed-loop TCP or UDP load against any echo server.
 *
 * ```sh
 * deno run -A jsr:@x/echo/bench --port 8888 --connections 10 --size 1000 --duration 5
 * deno run -A jsr:@x/echo/bench --port 8888 --udp --connections 4 --size 512
 * ```
 *
 * Closed loop by default: each connection sends one message and waits for
 * its whole echo (every byte checked, read while the message is still being
 * written) before the next. With `--rate R`, open loop: R requests per second
 * on schedule, each latency counted from when its request was due. The
 * report gives requests/s, MiB/s, latency percentiles from an HdrHistogram,
 * each distinct error once with its count, and over UDP the datagrams lost,
 * late, duplicated and reordered; as a table or (`--json`) one JSON object
 * (see {@linkcode BenchReport}). On a terminal a progress line is updated each
 * second on stderr and a latency histogram is drawn under the table. The
 * first Ctrl-C ends the run with its report; a second exits at once.
 *
 * @example
 * ```ts ignore
 * import { main } from "@x/echo/bench";
 *
 * Deno.exit(await main(["--port", "8888", "--duration", "2", "--json"]));
 * ```
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import { MAX_DATAGRAM_SIZE } from "../udp/socket.ts";
import { type BenchOptions, type BenchReport, runBench } from "../load/run.ts";
import { formatReport, rateMissed, reportJson } from "../load/report.ts";
import { spinWhereCoresAllow, waitOnMainThread } from "../poll/_poller.ts";
import { LatencyHistogram } from "../load/histogram.ts";
import { UDP_MIN_SIZE } from "../load/_udp_load.ts";
import {
  collectUnknown,
  helpOrVersion,
  integerFlag,
  rejectSwitchValues,
  rejectUnknown,
  sendProxyFlag,
  textFlag,
  transportFlag,
  UsageError,
} from "./_args.ts";
import {
  CLIENT_TLS_UNIX_FLAGS,
  CLIENT_TLS_UNIX_USAGE,
  connectFromFlags,
} from "./_tls_unix_flags.ts";

/**
 * How long the bench's closed loop looks for the next answer without
 * sleeping: round trips on loopback take tens of microseconds, and a sleep
 * costs its wake-up (see `waitOnMainThread`). Only while the bench's event
 * loops leave as many cores to the rest (see `spinWhereCoresAllow`).
 */
const SPIN_MICROSECONDS = 50;

export {
  type BenchOptions,
  type BenchReport,
  DEFAULT_PERCENTILES,
  type LatencyReport,
  runBench,
} from "../load/run.ts";
export { formatReport, rateMissed, reportJson } from "../load/report.ts";
export { formatMicroseconds, LatencyHistogram, type LatencySnapshot } from "../load/histogram.ts";

/** The bench's boolean flags, for `parseArgs`. */
const SWITCHES = ["help", "version", "json", "udp", "churn", ...CLIENT_TLS_UNIX_FLAGS.boolean];

/**
 * The `--help` text of the bench program.
 *
 * @example
 * ```ts
 * import { BENCH_USAGE } from "@x/echo/bench";
 *
 * console.log(BENCH_USAGE.includes("--connections")); // true
 * ```
 */
export const BENCH_USAGE = `Usage: deno run -A jsr:@x/echo/bench [options]

Load on an echo server. Closed loop by default: each connection sends a message
and waits for the whole echo (every byte checked) before sending the next.

Options:
  --hostname, --host ADDR   server address (default 127.0.0.1)
  --port N                  server port (default 8888)
  --transport tcp|udp       the protocol to load (default tcp)
  --udp                     same as --transport udp: each "connection" is a socket
                            sending one numbered datagram at a time; an echo missing
                            after 1 s counts as lost and the next is sent
  --connections N           concurrent connections (default 10)
  --size BYTES              message size (default 1000; UDP: 4 to 65507)
  --duration S              seconds to run, once connected (default 5)
  --rate R                  open loop: R requests/s over all connections, on
                            schedule; a request held back by the last echo counts
                            from when it was due (default: closed loop); keep
                            each connection's interval at 0.5 ms or more
  --churn                   TCP: a new connection per request, closed after its echo;
                            reports connections/s and the connect latency apart
                            from the echo's (closed loop)
  --workers N               run the connections on N event loops (Web Workers) and
                            merge their figures: for when one core cannot keep up
                            with the server (default 1; at most --connections)
  --percentiles LIST        latency percentiles to report (default 50,90,99,99.9,99.99)
  --hgrm FILE               write the latencies as HdrHistogram's percentile
                            distribution (in ms), for its plotters
  --send-proxy v1|v2        TCP: begin each connection with a PROXY protocol header of
                            that version (for a server started with --proxy-protocol)
${CLIENT_TLS_UNIX_USAGE}
  --json                    print the report as one JSON object
  --version                 print the version and exit
  -h, --help                print this help and exit

Exits 1 when no round trip completed, an answer differed from what was sent, or
a connection failed; the report says which. The first Ctrl-C ends the run with
its report; a second exits at once.
`;

/**
 * Runs the bench program with `args`; resolves to its exit code: 0, 1 when
 * no round trip completed, an answer was wrong, a connection failed or the
 * `--hgrm` file could not be written after all (a line on stderr says which),
 * 2 for bad flags.
 *
 * @example
 * ```ts ignore
 * import { main } from "@x/echo/bench";
 *
 * Deno.exit(await main(Deno.args));
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const unknown: string[] = [];
  const flags = parseArgs(args, {
    string: [
      "hostname",
      "port",
      "transport",
      "send-proxy",
      "connections",
      "size",
      "duration",
      "rate",
      "percentiles",
      "hgrm",
      "workers",
      ...CLIENT_TLS_UNIX_FLAGS.string,
    ],
    boolean: SWITCHES,
    alias: { host: "hostname", h: "help" },
    default: {
      hostname: "127.0.0.1",
      port: "8888",
      connections: "10",
      size: "1000",
      duration: "5",
    },
    unknown: collectUnknown(unknown),
  });
  const early = helpOrVersion(flags, BENCH_USAGE, import.meta.url);
  if (early !== null) return early;
  let options: BenchOptions;
  const controller = new AbortController();
  const latencies = new LatencyHistogram();
  try {
    rejectUnknown(unknown, args);
    rejectSwitchValues(args, SWITCHES);
    const transport = transportFlag(flags.transport, flags.udp);
    options = {
      transport,
      hostname: textFlag("hostname", flags.hostname),
      port: integerFlag("port", flags.port, 1, 65535),
      connections: integerFlag("connections", flags.connections, 1, 100_000),
      size: integerFlag("size", flags.size, 1, transport === "udp" ? MAX_DATAGRAM_SIZE : 64 << 20),
      durationMs: integerFlag("duration", flags.duration, 1, 86400) * 1000,
      percentiles: flags.percentiles === undefined ? undefined : percentilesFlag(flags.percentiles),
      rate: flags.rate === undefined ? undefined : integerFlag("rate", flags.rate, 1, 100_000_000),
      workers: flags.workers === undefined
        ? undefined
        : integerFlag("workers", flags.workers, 1, 1024),
      latencies,
      signal: controller.signal,
      churn: flags.churn,
      sendProxy: sendProxyFlag(flags["send-proxy"], transport),
      ...connectFromFlags(flags, args, transport),
    };
    if (transport === "udp" && options.size < UDP_MIN_SIZE) {
      throw new UsageError(
        `Cannot use --size ${options.size} with --udp: each datagram carries a ` +
          `${UDP_MIN_SIZE}-byte sequence number, which tells a late echo from an answer; ` +
          `use --size ${UDP_MIN_SIZE} or more`,
      );
    }
    if (flags.churn && (transport === "udp" || flags.rate !== undefined)) {
      throw new UsageError(
        `Cannot use --churn with ${transport === "udp" ? "--udp" : "--rate"}: --churn makes a ` +
          `TCP connection per request, in closed loop`,
      );
    }
    if (options.workers !== undefined && options.workers > options.connections) {
      throw new UsageError(
        `Cannot use --workers ${options.workers} with --connections ${options.connections}: ` +
          `each worker needs a connection; use --workers ${options.connections} or fewer`,
      );
    }
    if (flags.hgrm !== undefined) checkWritable("hgrm", textFlag("hgrm", flags.hgrm));
    if (Deno.stderr.isTerminal()) options.onProgress = showProgress;
  } catch (error) {
    console.error(`echo bench: ${(error as Error).message}`);
    return error instanceof UsageError ? 2 : 1;
  }
  if (
    options.rate !== undefined && (1000 * options.connections) / options.rate < FINEST_INTERVAL_MS
  ) {
    console.error(
      `echo bench: Warning: at ${options.rate} requests/s over ${options.connections} ` +
        `connections each sends every ${
          ((1000 * options.connections) / options.rate).toFixed(2)
        } ms, finer than this client's timers keep to (a few hundred microseconds): the ` +
        `latencies will include its own lag, and its requests bunch; use --connections ${
          Math.ceil((options.rate * FINEST_INTERVAL_MS) / 1000)
        } or more`,
    );
  }
  if (
    runAsProgram && options.rate === undefined && options.path === undefined &&
    options.tls === undefined
  ) {
    // The run's I/O all goes through the poller (the epoll backend; elsewhere nothing polls):
    // its waits may sleep on the main thread, a wake-up cheaper per round trip, after looking
    // for the next answer without sleeping for a while (see waitOnMainThread). Not in open
    // loop, whose timers must fire on time, nor for main() called from a program with sockets
    // of its own.
    waitOnMainThread(true, spinWhereCoresAllow(SPIN_MICROSECONDS, options.workers ?? 1));
  }
  // The first Ctrl-C ends the run with its report; a second exits at once.
  const interrupt = () => {
    if (controller.signal.aborted) Deno.exit(130);
    controller.abort();
  };
  Deno.addSignalListener("SIGINT", interrupt);
  let report: BenchReport;
  try {
    report = await runBench(options);
  } finally {
    if (options.onProgress) Deno.stderr.writeSync(encoder.encode("\r\x1b[2K"));
    Deno.removeSignalListener("SIGINT", interrupt);
  }
  // The file was checked before the run; should it fail now, the report still comes first.
  let hgrmFailure: string | null = null;
  if (flags.hgrm !== undefined) {
    try {
      await Deno.writeTextFile(flags.hgrm, latencies.percentileDistribution());
    } catch (error) {
      hgrmFailure = `Cannot write --hgrm ${flags.hgrm}: ${writeFailure(error)}; ` +
        `the report is complete, only the distribution is lost`;
    }
  }
  if (flags.json) {
    console.log(reportJson(report));
  } else {
    console.log(formatReport(report));
    if (Deno.stdout.isTerminal()) console.log(["", ...latencies.chart()].join("\n"));
  }
  const verdict = verdictOf(report);
  if (verdict !== null) console.error(`echo bench: ${verdict}`);
  if (flags.json && rateMissed(report)) {
    console.error(
      `echo bench: Warning: ${report.requestsPerSecond.toFixed(0)} requests/s achieved of the ` +
        `${report.targetRate} asked`,
    );
  }
  if (hgrmFailure !== null) console.error(`echo bench: ${hgrmFailure}`);
  return verdict === null && hgrmFailure === null ? 0 : 1;
}

/**
 * Checks, before the run, that the file given to `--name` can be written:
 * opens it for writing (creating it, but leaving what it holds until the run
 * ends), so that a bad path costs no run.
 *
 * @throws {UsageError} naming the file and why it cannot be written.
 */
function checkWritable(name: string, path: string): void {
  try {
    Deno.openSync(path, { write: true, create: true }).close();
  } catch (error) {
    throw new UsageError(
      `Cannot use --${name} ${path}: ${writeFailure(error)}; give a file that can be written`,
    );
  }
}

/** Why a file could not be written, in a few words. */
function writeFailure(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "its directory does not exist";
  if (error instanceof Deno.errors.IsADirectory) return "it is a directory";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  return `it cannot be written (${(error as Error).message})`;
}

/** Why a run failed, or `null` when it did not. */
function verdictOf(report: BenchReport): string | null {
  const first = report.errorMessages[0];
  const cause = first === undefined ? "" : ` (${first.count}× ${first.message})`;
  if (report.requests === 0) {
    const late = report.udp?.late ?? 0;
    if (late > 0) {
      // Echoes came, after the loss timeout (--udp uses runBench's default, 1 s).
      return `no round trip completed: ${
        late === 1 ? "the one echo that came was" : `all ${late} echoes that came were`
      } late (after the 1 s loss timeout)${cause}`;
    }
    if (first === undefined && report.udp !== null && report.udp.lost > 0) {
      return `no round trip completed: none of the ${report.udp.sent} datagrams sent was ` +
        `answered (is a UDP echo server listening there?)`;
    }
    return `no round trip completed${cause}`;
  }
  if (report.wrongAnswers > 0) {
    return `${report.wrongAnswers} answer${
      report.wrongAnswers === 1 ? "" : "s"
    } differed from what was sent`;
  }
  if (report.errors > 0) return `${report.errors} error${report.errors === 1 ? "" : "s"}${cause}`;
  return null;
}

/**
 * `--percentiles 50,99.9`: numbers above 0 and at most 100, returned in
 * ascending order, each once (`99.9,99.90` is one percentile).
 */
function percentilesFlag(text: string): number[] {
  const values = text.split(",").map((part) => part.trim());
  const numbers = values.map(Number);
  const bad = values.findIndex((v, i) => v === "" || !(numbers[i] > 0 && numbers[i] <= 100));
  if (bad >= 0) {
    throw new UsageError(
      `Cannot use --percentiles ${JSON.stringify(text)}: each must be a number above 0 and ` +
        `at most 100, separated by commas, such as 50,99,99.9`,
    );
  }
  return [...new Set(numbers)].sort((a, b) => a - b);
}

const encoder = new TextEncoder();
/**
 * The shortest interval between one connection's requests that timers keep
 * to. The poller's timers fire within microseconds while it is busy, and
 * 0.2-0.4 ms late when it sleeps (the hand-back from the blocking thread):
 * against cecho, one connection at 2,000 requests/s measured the same
 * latencies as at 1,000 (p50 29, p90 100-116 µs), at 4,000 a p99 three
 * times higher, at 10,000 a p90 of 795 µs.
 */
const FINEST_INTERVAL_MS = 0.5;
/** `main` runs as the bench program, not called by another program. */
let runAsProgram = false;

/** Rewrites one status line on the terminal. */
function showProgress({ seconds, requests, errors }: {
  seconds: number;
  requests: number;
  errors: number;
}): void {
  const rate = seconds > 0 ? Math.round(requests / seconds) : 0;
  Deno.stderr.writeSync(
    encoder.encode(`\r\x1b[2K${seconds} s: ${requests} requests, ${rate} req/s, ${errors} errors`),
  );
}

if (import.meta.main) {
  runAsProgram = true;
  Deno.exit(await main(Deno.args));
}
