/**
 * The echo load program: closed-loop TCP load against any echo server.
 *
 * ```sh
 * deno run -A jsr:@x/echo/bench --port 8888 --connections 10 --size 1000 --duration 5
 * ```
 *
 * Each connection sends one message and waits for its whole echo before the
 * next, verifying every byte. The report gives requests/s, MiB/s, latency
 * percentiles and errors, as a table or (`--json`) one JSON object.
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
import { dialTcp } from "../tcp/client.ts";
import {
  collectUnknown,
  helpOrVersion,
  integerFlag,
  rejectUnknown,
  textFlag,
  UsageError,
} from "./_args.ts";

/** The `--help` text of the bench program. */
export const BENCH_USAGE = `Usage: deno run -A jsr:@x/echo/bench [options]

Closed-loop load on an echo server: each connection sends a message and waits
for the whole echo (every byte checked) before sending the next.

Options:
  --hostname, --host ADDR   server address (default 127.0.0.1)
  --port N                  server port (default 8888)
  --connections N           concurrent connections (default 10)
  --size BYTES              message size (default 1000)
  --duration S              seconds to run (default 5)
  --json                    print the report as one JSON object
  --version                 print the version and exit
  -h, --help                print this help and exit
`;

/**
 * What one bench run measured.
 *
 * @example
 * ```ts
 * import type { BenchReport } from "@x/echo/bench";
 *
 * function summary(report: BenchReport): string {
 *   return `${report.requestsPerSecond.toFixed(0)} req/s, p99 ${report.latencyUs.p99} µs`;
 * }
 * ```
 */
export interface BenchReport {
  /** Connections used. */
  connections: number;
  /** Message size in bytes. */
  size: number;
  /** Seconds measured. */
  seconds: number;
  /** Round trips completed. */
  requests: number;
  /** Round trips per second. */
  requestsPerSecond: number;
  /** Echoed payload per second, in MiB. */
  mibPerSecond: number;
  /** Round-trip latency in microseconds. */
  latencyUs: { min: number; p50: number; p90: number; p99: number; p999: number; max: number };
  /** Connections that failed: refused, reset, short or wrong echo. */
  errors: number;
}

/** Options of {@linkcode runBench}. */
export interface BenchOptions {
  /** Server address. */
  hostname: string;
  /** Server port. */
  port: number;
  /** Concurrent connections. */
  connections: number;
  /** Message size in bytes. */
  size: number;
  /** Milliseconds to run. */
  durationMs: number;
}

/**
 * Runs closed-loop load and returns the report.
 *
 * @example
 * ```ts ignore
 * import { runBench } from "@x/echo/bench";
 *
 * const report = await runBench({ hostname: "127.0.0.1", port: 8888, connections: 4, size: 100, durationMs: 1000 });
 * console.log(report.requestsPerSecond);
 * ```
 */
export async function runBench(options: BenchOptions): Promise<BenchReport> {
  const { connections, size, durationMs } = options;
  const message = new Uint8Array(size);
  for (let i = 0; i < size; i++) message[i] = (i * 31 + 7) & 0xff;
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  const deadline = start + durationMs;
  const worker = async () => {
    let conn: Deno.TcpConn | undefined;
    try {
      conn = await dialTcp(options.hostname, options.port);
      conn.setNoDelay(true);
      const echo = new Uint8Array(size);
      while (performance.now() < deadline) {
        const sentAt = performance.now();
        for (let off = 0; off < size;) off += await conn.write(message.subarray(off));
        for (let got = 0; got < size;) {
          const n = await conn.read(echo.subarray(got));
          if (n === null) throw new Error(`the server closed after ${got} of ${size} bytes`);
          got += n;
        }
        latencies.push(performance.now() - sentAt);
        for (let i = 0; i < size; i++) {
          if (echo[i] !== message[i]) throw new Error(`wrong byte at ${i} of the echo`);
        }
      }
    } catch (error) {
      errors++;
      console.error(`echo bench: connection failed: ${(error as Error).message}`);
    } finally {
      conn?.close();
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies.length === 0 ? 0 : Math.round(
      1000 * latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))],
    );
  return {
    connections,
    size,
    seconds: Number(seconds.toFixed(3)),
    requests: latencies.length,
    requestsPerSecond: latencies.length / seconds,
    mibPerSecond: (latencies.length * size) / seconds / (1 << 20),
    latencyUs: {
      min: at(0),
      p50: at(0.5),
      p90: at(0.9),
      p99: at(0.99),
      p999: at(0.999),
      max: latencies.length ? Math.round(1000 * latencies[latencies.length - 1]) : 0,
    },
    errors,
  };
}

/** Formats a report as an aligned table. */
export function formatReport(report: BenchReport): string {
  const l = report.latencyUs;
  return [
    `connections   ${report.connections}`,
    `message size  ${report.size} bytes`,
    `duration      ${report.seconds} s`,
    `requests      ${report.requests}`,
    `requests/s    ${report.requestsPerSecond.toFixed(0)}`,
    `MiB/s         ${report.mibPerSecond.toFixed(2)}`,
    `latency µs    min ${l.min}  p50 ${l.p50}  p90 ${l.p90}  p99 ${l.p99}  p99.9 ${l.p999}  max ${l.max}`,
    `errors        ${report.errors}`,
  ].join("\n");
}

/**
 * Runs the bench program with `args`; resolves to its exit code (1 if any
 * connection failed).
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
    string: ["hostname", "port", "connections", "size", "duration"],
    boolean: ["help", "version", "json"],
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
  const early = helpOrVersion(flags, BENCH_USAGE);
  if (early !== null) return early;
  let options: BenchOptions;
  try {
    rejectUnknown(unknown, args);
    options = {
      hostname: textFlag("hostname", flags.hostname),
      port: integerFlag("port", flags.port, 1, 65535),
      connections: integerFlag("connections", flags.connections, 1, 100_000),
      size: integerFlag("size", flags.size, 1, 64 << 20),
      durationMs: integerFlag("duration", flags.duration, 1, 86400) * 1000,
    };
  } catch (error) {
    console.error(`echo bench: ${(error as Error).message}`);
    return error instanceof UsageError ? 2 : 1;
  }
  const report = await runBench(options);
  console.log(flags.json ? JSON.stringify(report) : formatReport(report));
  return report.errors > 0 ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
