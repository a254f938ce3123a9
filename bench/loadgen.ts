/**
 * `deno task bench:loadgen`: the bench program as a load generator, side by
 * side with the C one. Against the C echo servers of `../shared/bench`
 * (`cecho` for TCP, `cecho_udp` for UDP), echoload (udpload) and
 * `./bench` take turns for `--rounds` rounds at each size and connection
 * count; the table gives each one's requests/s (median round) and the
 * bench's over the C generator's, median and spread over the rounds. Each
 * one's CPU time per request (user and kernel, in µs) is measured too, over
 * the middle of each run (from its first second to half a second before its
 * end, past start-up and connecting), divided by the run's requests/s: on a
 * shared host whose speed varies from run to run, that ratio moves less than
 * the requests/s. (`./bench`'s requests/s counts from its start, connecting
 * included, echoload's from when all its connections are made: at 1,000
 * connections that puts `./bench`'s CPU per request about 2% high.)
 *
 * With `--floor`, `bench/tcp_load_floor.ts` (`bench/udp_load_floor.ts`
 * with `--udp`) takes its turn too: echoload's (udpload's) loop in
 * JavaScript over FFI, none of this module's code, the most `./bench` could
 * reach on Deno; its columns give its requests/s and its ratio to the C
 * generator's, median and spread. Over TCP, so does the same floor with
 * `--check`, which checks every byte of each echo as `./bench` does (and
 * neither C generator does): the most `./bench` could reach while it
 * checks; its columns give its ratio to the C generator's.
 *
 * A run that fails (exits other than 0: a C generator that met an error,
 * `./bench` with no answer or a wrong one) ends the comparison with its
 * output: its figures are not counted.
 *
 * ```sh
 * deno task bench:loadgen                       # TCP: 1,000 and 100,000 bytes, 10 and 1,000 connections
 * deno task bench:loadgen --udp --sizes 512 --conns 4,32
 * deno task bench:loadgen --floor --sizes 1000  # and the floor beside them
 * deno task bench:loadgen --udp --floor --sizes 512
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
  boolean: ["udp", "floor"],
  default: { rounds: "3", duration: "4" },
});
const udp = flags.udp;
const floor = flags.floor;
const sizes = (flags.sizes ?? (udp ? "64,512" : "1000,100000")).split(",").map(Number);
const conns = (flags.conns ?? (udp ? "4,32" : "10,1000")).split(",").map(Number);
const rounds = Number(flags.rounds);
const duration = Number(flags.duration);
if (!(duration >= 2)) {
  throw new RangeError(
    `Cannot run for --duration ${flags.duration}: CPU time is measured from each run's first ` +
      `second to half a second before its end; use at least 2 seconds`,
  );
}

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

/** Clock ticks per second of `/proc/PID/stat`'s CPU times. */
const ticksPerSecond = Number(
  new TextDecoder().decode(new Deno.Command("getconf", { args: ["CLK_TCK"] }).outputSync().stdout),
) || 100;

/** The user and kernel CPU seconds process `pid` has used; `NaN` once it has ended. */
function cpuSeconds(pid: number): number {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return NaN; // ended (and reaped) early
    throw error;
  }
  // Fields after the name, which ends with the last ")": utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

/** What one run of a load generator measured. */
interface Run {
  rps: number;
  /** CPU µs per request over the middle of the run; `NaN` when it ended before. */
  cpuUs: number;
}

/** One run of `command`, which prints one JSON object with requests/s as `field`. */
async function run(command: string, args: string[], field: string): Promise<Run> {
  const child = new Deno.Command(command, {
    args,
    stdout: "piped",
    stderr: "piped",
    env: { DENO_NO_UPDATE_CHECK: "1" },
  }).spawn();
  const output = child.output();
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  await sleep(1000);
  const from = performance.now();
  const cpuFrom = cpuSeconds(child.pid);
  await sleep((duration - 1.5) * 1000);
  const cpu = cpuSeconds(child.pid) - cpuFrom;
  const seconds = (performance.now() - from) / 1000;
  const { success, code, stdout, stderr } = await output;
  const text = new TextDecoder().decode(stdout);
  if (!success) {
    throw new Error(
      `Cannot count a failed run: ${command} ${args.join(" ")} exited with ${code}\n` +
        `${text}${new TextDecoder().decode(stderr)}`,
    );
  }
  const rps: number = JSON.parse(text.trim().split("\n").at(-1)!)[field];
  return { rps, cpuUs: (cpu * 1e6) / (rps * seconds) };
}

const port = freePort();
const server = new Deno.Command(`${bin}/${udp ? "cecho_udp" : "cecho"}`, {
  args: [String(port)],
  stdout: "null",
  stderr: "null",
}).spawn();
await new Promise((resolve) => setTimeout(resolve, 300)); // the C server binds at once
const bench = new URL("src/cli/bench.ts", root).pathname;
const floorProgram = new URL(`bench/${udp ? "udp" : "tcp"}_load_floor.ts`, root).pathname;
/** The TCP floor also runs with `--check` (the UDP floor has none). */
const checkingFloor = floor && !udp;
/** Two decimals, or a dash for no figure. */
const figure = (value: number) => Number.isFinite(value) ? value.toFixed(2) : "—";
const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const lines = [
  `| transport | msg bytes | connections | ${
    udp ? "udpload" : "echoload"
  } req/s | ./bench req/s | ./bench vs C | per round | CPU µs/req, C / ./bench | C's CPU over ./bench's |${
    floor ? " floor req/s | floor vs C | per round |" : ""
  }${checkingFloor ? " checking floor vs C | per round |" : ""}`,
  `|---|---|---|---|---|---|---|---|---|${floor ? "---|---|---|" : ""}${
    checkingFloor ? "---|---|" : ""
  }`,
];
/** The median of `ratios` and their spread, as the table shows them. */
const spreadOf = (ratios: number[]) =>
  `${median(ratios).toFixed(2)} | ` +
  `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}`;
try {
  for (const size of sizes) {
    for (const n of conns) {
      const c: Run[] = [];
      const ours: Run[] = [];
      const floors: Run[] = [];
      const checkingFloors: Run[] = [];
      for (let round = 0; round < rounds; round++) {
        c.push(
          await run(`${bin}/${udp ? "udpload" : "echoload"}`, [
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
        // Both Deno programs take the case in the same flags.
        const caseFlags = [
          "--port",
          String(port),
          "--size",
          String(size),
          "--connections",
          String(n),
          "--duration",
          String(duration),
        ];
        ours.push(
          await run(Deno.execPath(), [
            "run",
            "-A",
            bench,
            ...(udp ? ["--udp"] : []),
            ...caseFlags,
            "--json",
          ], "requestsPerSecond"),
        );
        if (floor) {
          floors.push(await run(Deno.execPath(), ["run", "-A", floorProgram, ...caseFlags], "rps"));
        }
        if (checkingFloor) {
          checkingFloors.push(
            await run(Deno.execPath(), ["run", "-A", floorProgram, ...caseFlags, "--check"], "rps"),
          );
        }
      }
      const ratios = ours.map((value, i) => value.rps / c[i].rps);
      // A run that ended before its CPU window closed has no CPU figure: left out.
      const cpuRatios = ours.map((value, i) => c[i].cpuUs / value.cpuUs).filter((x) => x === x);
      const rpsOf = (runs: Run[]) => Math.round(median(runs.map((one) => one.rps)));
      const cpuOf = (runs: Run[]) =>
        figure(median(runs.map((one) => one.cpuUs).filter((x) => x === x)));
      lines.push(
        `| ${udp ? "udp" : "tcp"} | ${size} | ${n} | ${rpsOf(c)} | ${rpsOf(ours)} | ` +
          `${spreadOf(ratios)} | ` +
          `${cpuOf(c)} / ${cpuOf(ours)} | ${figure(median(cpuRatios))} (` +
          `${figure(Math.min(...cpuRatios))}–${figure(Math.max(...cpuRatios))}) |` +
          (floor
            ? ` ${rpsOf(floors)} | ${spreadOf(floors.map((value, i) => value.rps / c[i].rps))} |`
            : "") +
          (checkingFloor
            ? ` ${spreadOf(checkingFloors.map((value, i) => value.rps / c[i].rps))} |`
            : ""),
      );
      console.error(lines.at(-1));
    }
  }
} finally {
  server.kill();
  await server.status;
}
console.log(lines.join("\n"));
