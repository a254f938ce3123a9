/**
 * `deno task bench`: runs the `./bench` program against our `./server` in
 * both APIs and on both backends, at 1,000 and 100,000 bytes, and prints
 * one Markdown table with requests/s, latency and the server's CPU time per
 * request (user + system, from /proc/PID/stat on Linux).
 *
 * Each server runs alone. The load comes from our own Deno client, which
 * shares the machine's cores with the server; for a comparison with other
 * servers on one footing use `../shared/bench/compare.sh` (see BENCHMARKS.md).
 *
 * Flags: `--duration S` (default 3), `--connections N` (default 10),
 * `--sizes "1000 100000"`.
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import { firstLine } from "./_first_line.ts";
import type { BenchReport } from "../src/cli/bench.ts";

const flags = parseArgs(Deno.args, {
  string: ["duration", "connections", "sizes"],
  default: { duration: "3", connections: "10", sizes: "1000 100000" },
});
const sizes = flags.sizes.split(/\s+/).filter(Boolean);
const root = new URL("../", import.meta.url);
const program = (name: string) => new URL(`src/cli/${name}.ts`, root).pathname;
const CLOCK_TICKS = 100; // USER_HZ on Linux

/** The server's user + system CPU seconds so far, or NaN where /proc is not there. */
function cpuSeconds(pid: number): number {
  try {
    const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

const rows: string[] = [
  "| api | backend | msg bytes | conns | req/s | p50 µs | p99 µs | server CPU µs/req |",
  "|---|---|---|---|---|---|---|---|",
];
for (const backend of ["epoll", "deno"]) {
  for (const api of ["protocol", "stream"]) {
    const server = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", program("server"), "--port", "0", "--api", api, "--backend", backend],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const line = await firstLine(server.stdout);
    const port = line.match(/listening on [^ ]+:(\d+)/)?.[1];
    if (!port) throw new Error(`the server did not say where it listens: ${line}`);
    for (const size of sizes) {
      const before = cpuSeconds(server.pid);
      const output = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          program("bench"),
          "--port",
          port,
          "--size",
          size,
          "--connections",
          flags.connections,
          "--duration",
          flags.duration,
          "--json",
        ],
        stderr: "inherit",
      }).output();
      const cpu = cpuSeconds(server.pid) - before;
      if (!output.success) throw new Error(`bench failed against the ${api} API`);
      const report: BenchReport = JSON.parse(new TextDecoder().decode(output.stdout));
      const requests = report.requestsPerSecond * report.seconds;
      rows.push(
        `| ${api} | ${backend} | ${size} | ${flags.connections} | ` +
          `${report.requestsPerSecond.toFixed(0)} | ${report.latencyUs.percentiles["50"]} | ` +
          `${report.latencyUs.percentiles["99"]} | ${(cpu * 1e6 / requests).toFixed(2)} |`,
      );
    }
    server.kill("SIGTERM");
    await server.status;
  }
}
console.log(rows.join("\n"));
