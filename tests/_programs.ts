/** Helpers to run the command-line programs as subprocesses, as a user would. */

import { decode } from "./_helpers.ts";

const root = new URL("../", import.meta.url);
export const SERVER = new URL("src/cli/server.ts", root).pathname;
export const CLIENT = new URL("src/cli/client.ts", root).pathname;
export const BENCH = new URL("src/cli/bench.ts", root).pathname;

/**
 * Runs a program to completion (`deno run` with `denoFlags`); returns its
 * exit code and output. One that has not ended within a minute (a server
 * that took flags it should have refused, and serves) is killed: its code
 * is then 143, and the test fails instead of hanging.
 */
export async function run(
  program: string,
  args: string[],
  stdin = "",
  denoFlags: string[] = ["-A"],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...denoFlags, "--quiet", program, ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(stdin));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  return { code, stdout: decode(stdout), stderr: decode(stderr) };
}

/** A server program running in the background, with its port read from its first line. */
export class ServerProcess implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  port = 0;
  firstLine = "";
  readonly #stdout: ReadableStreamDefaultReader<string>;
  readonly stderr: Promise<string>;

  /**
   * Starts the server with `args` (after `--port 0`, unless they hold
   * `--unix`), under `deno run` with `denoFlags`.
   */
  constructor(args: string[], denoFlags: string[] = ["-A"]) {
    this.child = new Deno.Command(Deno.execPath(), {
      // A server on a Unix socket (--unix) has no port.
      args: [
        "run",
        ...denoFlags,
        "--quiet",
        SERVER,
        ...(args.includes("--unix") ? [] : ["--port", "0"]),
        ...args,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdout = this.child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.stderr = new Response(this.child.stderr).text();
  }

  /** The startup lines read so far (one per listener). */
  lines: string[] = [];
  #text = "";

  /** Waits for the "listening on HOST:PORT" line (the first of `count`, when there are more). */
  async ready(count = 1): Promise<this> {
    while (this.lines.length < count) {
      const end = this.#text.indexOf("\n");
      if (end >= 0) {
        this.lines.push(this.#text.slice(0, end));
        this.#text = this.#text.slice(end + 1);
        continue;
      }
      const { value, done } = await this.#stdout.read();
      if (done) throw new Error(`the server exited before listening: ${await this.stderr}`);
      this.#text += value;
    }
    this.firstLine = this.lines[0];
    const match = this.firstLine.match(/listening on ([^ ]*) /);
    if (!match) throw new Error(`no address in ${JSON.stringify(this.firstLine)}`);
    // unix:PATH for a Unix socket: no port.
    if (!match[1].startsWith("unix:")) this.port = Number(match[1].match(/:(\d+)$/)![1]);
    return this;
  }

  /** Sends `signal` and returns the exit code. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<number> {
    this.child.kill(signal);
    const { code } = await this.child.status;
    await this.#stdout.cancel();
    await this.stderr;
    return code;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await this.child.status;
    await this.#stdout.cancel().catch(() => {});
    await this.stderr;
  }
}

/** Whether `command` is on the PATH. */
export function installed(command: string): boolean {
  try {
    const { success } = new Deno.Command("sh", {
      args: ["-c", `command -v ${command}`],
      stdout: "null",
      stderr: "null",
    }).outputSync();
    return success;
  } catch {
    return false;
  }
}

/**
 * Runs `command` with `input` on stdin; returns its exit code, stdout bytes
 * and stderr text. A program that exits before it has read all of its
 * input is no error here (as in a shell pipeline); one that runs for more
 * than a minute is killed.
 */
export async function pipeThrough(
  command: string,
  args: string[],
  input: Uint8Array,
): Promise<{ code: number; stdout: Uint8Array; stderr: string }> {
  const child = new Deno.Command(command, {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).spawn();
  const writing = (async () => {
    const writer = child.stdin.getWriter();
    try {
      await writer.write(input);
      await writer.close();
    } catch (error) {
      if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
    }
  })();
  const [{ code, stdout, stderr }] = await Promise.all([child.output(), writing]);
  return { code, stdout, stderr: decode(stderr) };
}

/**
 * The lowest port anyone may bind (Linux's net.ipv4.ip_unprivileged_port_start);
 * 1024 where the system does not say.
 */
export function unprivilegedPortStart(): number {
  try {
    return Number(Deno.readTextFileSync("/proc/sys/net/ipv4/ip_unprivileged_port_start").trim());
  } catch {
    return 1024;
  }
}
