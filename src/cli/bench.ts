/**
 * The echo load program: closed-loop TCP or UDP load against any echo server.
 *
 * ```sh
 * deno run -A jsr:@x/echo/bench --port 8888 --connections 10 --size 1000 --duration 5
 * deno run -A jsr:@x/echo/bench --port 8888 --udp --connections 4 --size 512
 * ```
 *
 * Each connection sends one message and waits for its whole echo before the
 * next, verifying every byte. The report gives requests/s, MiB/s, latency
 * percentiles and errors (and, over UDP, datagrams lost), as a table or
 * (`--json`) one JSON object. On a terminal a progress line is updated each
 * second on stderr.
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
import { connectUdpClient } from "../udp/request_client.ts";
import { MAX_DATAGRAM_SIZE } from "../udp/socket.ts";
import {
  collectUnknown,
  helpOrVersion,
  integerFlag,
  rejectUnknown,
  textFlag,
  transportFlag,
  UsageError,
} from "./_args.ts";

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

Closed-loop load on an echo server: each connection sends a message and waits
for the whole echo (every byte checked) before sending the next.

Options:
  --hostname, --host ADDR   server address (default 127.0.0.1)
  --port N                  server port (default 8888)
  --transport tcp|udp       the protocol to load (default tcp)
  --udp                     same as --transport udp: each "connection" is a socket
                            sending one datagram at a time; an echo missing after
                            1 s counts as lost and the next is sent
  --connections N           concurrent connections (default 10)
  --size BYTES              message size (default 1000; UDP: at most 65507)
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
  /** The protocol loaded. */
  transport: "tcp" | "udp";
  /** Connections used (UDP: sockets). */
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
  /** TCP: connections that failed (refused, reset, short or wrong echo). UDP: wrong echoes. */
  errors: number;
  /** UDP: datagrams whose echo did not come within 1 second (0 for TCP). */
  lost: number;
}

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
  /** Concurrent connections. */
  connections: number;
  /** Message size in bytes. */
  size: number;
  /** Milliseconds to run. */
  durationMs: number;
  /** Called about once a second while running, with the round trips so far. */
  onProgress?: (progress: { seconds: number; requests: number; errors: number }) => void;
}

/** How long a UDP round trip may take before its datagram counts as lost. */
const UDP_LOSS_TIMEOUT = 1000;

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
  const { connections, size, durationMs, transport = "tcp" } = options;
  const latencies: number[] = [];
  const counts = { errors: 0, lost: 0 };
  const start = performance.now();
  const deadline = start + durationMs;
  const worker = transport === "udp"
    ? () => udpWorker(options, deadline, latencies, counts)
    : () => tcpWorker(options, deadline, latencies, counts);
  const progress = options.onProgress && setInterval(() => {
    options.onProgress!({
      seconds: Math.round((performance.now() - start) / 1000),
      requests: latencies.length,
      errors: counts.errors,
    });
  }, 1000);
  try {
    await Promise.all(Array.from({ length: connections }, worker));
  } finally {
    clearInterval(progress);
  }
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies.length === 0 ? 0 : Math.round(
      1000 * latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))],
    );
  return {
    transport,
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
    errors: counts.errors,
    lost: counts.lost,
  };
}

/** The message every round trip sends: a pattern, so a wrong byte shows. */
function patternOf(size: number): Uint8Array {
  const message = new Uint8Array(size);
  for (let i = 0; i < size; i++) message[i] = (i * 31 + 7) & 0xff;
  return message;
}

/** One TCP connection's closed loop; a failure ends it and counts as an error. */
async function tcpWorker(
  options: BenchOptions,
  deadline: number,
  latencies: number[],
  counts: { errors: number },
): Promise<void> {
  const { size } = options;
  const message = patternOf(size);
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
        if (n === null) {
          throw new Error(`Cannot read the echo: the server closed after ${got} of ${size} bytes`);
        }
        got += n;
      }
      latencies.push(performance.now() - sentAt);
      for (let i = 0; i < size; i++) {
        if (echo[i] !== message[i]) {
          throw new Error(`Cannot verify the echo: byte ${i} differs from what was sent`);
        }
      }
    }
  } catch (error) {
    counts.errors++;
    console.error(`echo bench: Cannot go on with a connection: ${(error as Error).message}`);
  } finally {
    conn?.close();
  }
}

/**
 * One UDP socket's closed loop. Each datagram carries a sequence number in
 * its first 4 bytes (when it has 4), so a late echo is not taken for the next.
 */
async function udpWorker(
  options: BenchOptions,
  deadline: number,
  latencies: number[],
  counts: { errors: number; lost: number },
): Promise<void> {
  const { size } = options;
  const message = patternOf(size);
  const numbered = size >= 4;
  const view = new DataView(message.buffer);
  let sequence = 0;
  const isCurrent = (answer: Uint8Array) =>
    !numbered ||
    (answer.length >= 4 &&
      new DataView(answer.buffer, answer.byteOffset, 4).getUint32(0) === sequence);
  let client;
  try {
    client = await connectUdpClient({ hostname: options.hostname, port: options.port });
  } catch (error) {
    counts.errors++;
    console.error(`echo bench: Cannot open a UDP socket: ${(error as Error).message}`);
    return;
  }
  try {
    while (performance.now() < deadline) {
      sequence = (sequence + 1) >>> 0;
      if (numbered) view.setUint32(0, sequence);
      const sentAt = performance.now();
      let answer: Uint8Array;
      try {
        answer = await client.request(message, {
          timeout: UDP_LOSS_TIMEOUT,
          retries: 0,
          match: isCurrent,
        });
      } catch (error) {
        if (!(error instanceof Deno.errors.TimedOut)) throw error;
        counts.lost++;
        continue;
      }
      latencies.push(performance.now() - sentAt);
      if (answer.length !== size || answer.some((byte, i) => byte !== message[i])) {
        counts.errors++;
      }
    }
  } catch (error) {
    counts.errors++;
    console.error(`echo bench: Cannot go on with a UDP socket: ${(error as Error).message}`);
  } finally {
    await client.close();
  }
}

/**
 * Formats a report as an aligned table.
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
  const lines = [
    `transport     ${report.transport}`,
    `connections   ${report.connections}`,
    `message size  ${report.size} bytes`,
    `duration      ${report.seconds} s`,
    `requests      ${report.requests}`,
    `requests/s    ${report.requestsPerSecond.toFixed(0)}`,
    `MiB/s         ${report.mibPerSecond.toFixed(2)}`,
    `latency µs    min ${l.min}  p50 ${l.p50}  p90 ${l.p90}  p99 ${l.p99}  p99.9 ${l.p999}  max ${l.max}`,
    `errors        ${report.errors}`,
  ];
  if (report.transport === "udp") lines.push(`lost          ${report.lost} datagrams`);
  return lines.join("\n");
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
    string: ["hostname", "port", "transport", "connections", "size", "duration"],
    boolean: ["help", "version", "json", "udp"],
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
    const transport = transportFlag(flags.transport, flags.udp);
    options = {
      transport,
      hostname: textFlag("hostname", flags.hostname),
      port: integerFlag("port", flags.port, 1, 65535),
      connections: integerFlag("connections", flags.connections, 1, 100_000),
      size: integerFlag("size", flags.size, 1, transport === "udp" ? MAX_DATAGRAM_SIZE : 64 << 20),
      durationMs: integerFlag("duration", flags.duration, 1, 86400) * 1000,
    };
    if (Deno.stderr.isTerminal()) options.onProgress = showProgress;
  } catch (error) {
    console.error(`echo bench: ${(error as Error).message}`);
    return error instanceof UsageError ? 2 : 1;
  }
  const report = await runBench(options);
  if (options.onProgress) Deno.stderr.writeSync(encoder.encode("\r\x1b[2K"));
  console.log(flags.json ? JSON.stringify(report) : formatReport(report));
  return report.errors > 0 ? 1 : 0;
}

const encoder = new TextEncoder();

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

if (import.meta.main) Deno.exit(await main(Deno.args));
