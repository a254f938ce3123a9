/**
 * The bench report: built from what a run counted (on one event loop, or
 * merged from several), and formatted as a table for people.
 *
 * @module
 */

import type { BenchOptions, BenchReport } from "./run.ts";
import type { ErrorTally } from "./_state.ts";
import { type LatencyHistogram, latencyReport } from "./histogram.ts";

/** What a run counted, whether on one event loop (its `LoadState`) or summed over several. */
export interface RunFigures {
  readonly latencies: LatencyHistogram;
  readonly errors: ErrorTally;
  readonly requests: number;
  readonly wrong: number;
  readonly unfinished: number;
  readonly udp: NonNullable<BenchReport["udp"]>;
}

/**
 * The report of a run of `options` over `workers` event loops that counted
 * `figures` in `seconds`; with `churn`, the connections it made, those of
 * them completed by the stop (the rate's), and their connect latencies.
 */
export function reportOf(
  figures: RunFigures,
  options: BenchOptions,
  workers: number,
  seconds: number,
  percentiles: readonly number[],
  churn: { connected: number; connectedInTime: number; connects: LatencyHistogram },
): BenchReport {
  const transport = options.transport ?? "tcp";
  return {
    schema: 1,
    transport,
    connections: options.connections,
    workers,
    size: options.size,
    loop: options.rate === undefined ? "closed" : "open",
    targetRate: options.rate ?? null,
    seconds: Number(seconds.toFixed(3)),
    requests: figures.requests,
    requestsPerSecond: figures.requests / seconds,
    mibPerSecond: (figures.requests * options.size) / seconds / (1 << 20),
    latencyUs: latencyReport(figures.latencies, percentiles),
    errors: figures.errors.total,
    errorMessages: figures.errors.entries(),
    wrongAnswers: figures.wrong,
    unfinished: figures.unfinished,
    udp: transport === "udp" ? { ...figures.udp } : null,
    churn: options.churn
      ? {
        connections: churn.connected,
        connectionsPerSecond: churn.connectedInTime / seconds,
        connectUs: latencyReport(churn.connects, percentiles),
      }
      : null,
  };
}

/**
 * Formats a report as an aligned table: the figures, then each distinct
 * error with its count, then a warning when an open-loop run fell short of
 * its rate by more than 5%.
 *
 * @example
 * ```ts ignore
 * import { formatReport, runBench } from "@x/echo/bench";
 *
 * const options = { hostname: "127.0.0.1", port: 8888, connections: 4, size: 100, durationMs: 1000 };
 * console.log(formatReport(await runBench(options)));
 * ```
 */
export function formatReport(report: BenchReport): string {
  const l = report.latencyUs;
  const percentiles = ascending(l.percentiles).map(([p, us]) => `p${p} ${us}`).join("  ");
  const lines = [
    `transport     ${report.transport}`,
    `connections   ${report.connections}${
      report.workers > 1 ? ` (on ${report.workers} workers)` : ""
    }`,
    `message size  ${report.size} bytes`,
    `duration      ${report.seconds} s`,
    `requests      ${report.requests}${
      report.unfinished > 0 ? ` (and ${report.unfinished} unfinished at the end)` : ""
    }`,
    report.targetRate === null
      ? `requests/s    ${report.requestsPerSecond.toFixed(0)}`
      : `requests/s    ${report.requestsPerSecond.toFixed(0)} of ${report.targetRate} asked`,
    `MiB/s         ${report.mibPerSecond.toFixed(2)}`,
    `latency µs    min ${l.min}  ${percentiles}  max ${l.max}  mean ${l.mean}` +
    (report.loop === "open" ? "  (from when each request was due)" : ""),
    `errors        ${report.errors}${
      report.wrongAnswers > 0
        ? ` (${report.wrongAnswers} wrong answer${report.wrongAnswers === 1 ? "" : "s"})`
        : ""
    }`,
  ];
  if (report.churn !== null) {
    const c = report.churn;
    const connect = ascending(c.connectUs.percentiles).map(([p, us]) => `p${p} ${us}`).join("  ");
    lines.push(
      `connections/s ${c.connectionsPerSecond.toFixed(0)} (${c.connections} made, one per request)`,
      `connect µs    min ${c.connectUs.min}  ${connect}  max ${c.connectUs.max}  ` +
        `mean ${c.connectUs.mean}`,
    );
  }
  if (report.udp !== null) {
    const u = report.udp;
    lines.push(
      `datagrams     ${u.sent} sent, ${u.lost} lost, ${u.late} late, ${u.duplicates} duplicated, ` +
        `${u.reordered} reordered`,
    );
  }
  for (const { message, count } of report.errorMessages) {
    lines.push(`  ${count}× ${message}`);
  }
  if (rateMissed(report)) {
    lines.push(
      `Warning: ${report.requestsPerSecond.toFixed(0)} requests/s achieved of the ` +
        `${report.targetRate} asked: the server or this client could not keep up`,
    );
  }
  return lines.join("\n");
}

/**
 * Whether an open-loop run achieved less than 95% of its rate.
 *
 * @example
 * ```ts ignore
 * import { rateMissed, runBench } from "@x/echo/bench";
 *
 * const report = await runBench({ hostname: "127.0.0.1", port: 8888, connections: 4, size: 100, durationMs: 1000, rate: 1000 });
 * if (rateMissed(report)) console.error("the rate was not held");
 * ```
 */
export function rateMissed(report: BenchReport): boolean {
  return report.targetRate !== null && report.requestsPerSecond < report.targetRate * 0.95;
}

/**
 * A report as one line of JSON, as `--json` prints it: `JSON.stringify`'s,
 * but with each `percentiles` object's keys in ascending order. (An object
 * lists its integer-like keys first, whatever the order they were added in:
 * `JSON.stringify` would print `"100"` before `"99.9"`.) The schema is the
 * one the README shows under the bench's `--json`.
 *
 * @example
 * ```ts
 * import { reportJson, runBench } from "@x/echo/bench";
 *
 * const report = await runBench({ hostname: "127.0.0.1", port: 8888, connections: 4, size: 100, durationMs: 1000 });
 * console.log(reportJson(report)); // ... "percentiles":{"50":41,"90":58,"99":112,"99.9":240} ...
 * ```
 */
export function reportJson(report: BenchReport): string {
  return json(report, "");
}

/** `value` as JSON; a `percentiles` object (`key`) with its keys in ascending order. */
function json(value: unknown, key: string): string {
  if (key === "percentiles" && typeof value === "object" && value !== null) {
    const entries = ascending(value as Record<string, number>);
    return `{${entries.map(([p, us]) => `${JSON.stringify(p)}:${JSON.stringify(us)}`).join(",")}}`;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return JSON.stringify(value);
  }
  const fields = Object.entries(value).filter(([, field]) => field !== undefined);
  return `{${
    fields.map(([name, field]) => `${JSON.stringify(name)}:${json(field, name)}`).join(",")
  }}`;
}

/** The entries of a `percentiles` object, in ascending order of percentile. */
function ascending(percentiles: Record<string, number>): [string, number][] {
  return Object.entries(percentiles).sort(([a], [b]) => Number(a) - Number(b));
}
