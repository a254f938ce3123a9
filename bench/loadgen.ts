/**
 * `deno task bench:loadgen`: the bench program as a load generator, side by
 * side with the C one. Against the C echo servers of `../shared/bench`
 * (`cecho` for TCP, `cecho_udp` for UDP), echoload (udpload) and
 * `./bench` take turns for `--rounds` rounds at each size and connection
 * count; the table gives each one's requests/s (median round) and the
 * bench's over the C generator's, median and spread over the rounds.
 *
 * ```sh
 * deno task bench:loadgen                       # TCP: 1,000 and 100,000 bytes, 10 and 1,000 connections
 * deno task bench:loadgen --udp --sizes 512 --conns 4,32
 * ```
 *
 * The C programs are built with `cc` from `../shared/bench` into
 * `$TMPDIR/echo-bench-bin`, as `compare.sh` builds them.
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";

const flags = parseArgs(Deno.args, {
  string: ["sizes", "conns", "rounds", "duration"],
  boolean: ["udp"],
  default: { rounds: "3", duration: "4" },
});
const udp = flags.udp;
const sizes = (flags.sizes ?? (udp ? "64,512" : "1000,100000")).split(",").map(Number);
const conns = (flags.conns ?? (udp ? "4,32" : "10,1000")).split(",").map(Number);
const rounds = Number(flags.rounds);
const duration = Number(flags.duration);

const root = new URL("../", import.meta.url);
const shared = new URL("../shared/bench/", root).pathname;
const bin = `${Deno.env.get("TMPDIR") ?? "/tmp"}/echo-bench-bin`;
await Deno.mkdir(bin, { recursive: true });
for (
  const [name, source] of udp
    ? [["udpload", "udpload.c"], ["cecho_udp", "peers/cecho_udp.c"]]
    : [["echoload", "echoload.c"], ["cecho", "peers/cecho.c"]]
) {
  const { success, stderr } = await new Deno.Command("cc", {
    args: ["-O2", "-o", `${bin}/${name}`, `${shared}${source}`],
    stderr: "piped",
  }).output();
  if (!success) throw new Error(`Cannot build ${name}: ${new TextDecoder().decode(stderr)}`);
}

/** A free port on 127.0.0.1. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** Requests/s of one run of `command`, which prints one JSON object. */
async function rps(command: string, args: string[], field: string): Promise<number> {
  const { success, stdout, stderr } = await new Deno.Command(command, { args, stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(stdout);
  if (!success && text === "") throw new Error(new TextDecoder().decode(stderr));
  return JSON.parse(text.trim().split("\n").at(-1)!)[field];
}

const port = freePort();
const server = new Deno.Command(`${bin}/${udp ? "cecho_udp" : "cecho"}`, {
  args: [String(port)],
  stdout: "null",
  stderr: "null",
}).spawn();
await new Promise((resolve) => setTimeout(resolve, 300)); // the C server binds at once
const bench = new URL("src/cli/bench.ts", root).pathname;
const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const lines = [
  `| transport | msg bytes | connections | ${
    udp ? "udpload" : "echoload"
  } req/s | ./bench req/s | ./bench vs C | per round |`,
  "|---|---|---|---|---|---|---|",
];
try {
  for (const size of sizes) {
    for (const n of conns) {
      const c: number[] = [];
      const ours: number[] = [];
      for (let round = 0; round < rounds; round++) {
        c.push(
          await rps(`${bin}/${udp ? "udpload" : "echoload"}`, [
            "--port",
            String(port),
            "--msize",
            String(size),
            "--conns",
            String(n),
            "--duration",
            String(duration),
          ], "rps"),
        );
        ours.push(
          await rps(Deno.execPath(), [
            "run",
            "-A",
            bench,
            ...(udp ? ["--udp"] : []),
            "--port",
            String(port),
            "--size",
            String(size),
            "--connections",
            String(n),
            "--duration",
            String(duration),
            "--json",
          ], "requestsPerSecond"),
        );
      }
      const ratios = ours.map((value, i) => value / c[i]);
      lines.push(
        `| ${udp ? "udp" : "tcp"} | ${size} | ${n} | ${Math.round(median(c))} | ` +
          `${Math.round(median(ours))} | ${median(ratios).toFixed(2)} | ` +
          `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)} |`,
      );
      console.error(lines.at(-1));
    }
  }
} finally {
  server.kill();
  await server.status;
}
console.log(lines.join("\n"));
