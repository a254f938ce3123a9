/**
 * The reliability suite's tools: the ./server program run as a user runs it,
 * watched from outside (its memory and open descriptors through /proc), and
 * load whose every byte can be checked without keeping a copy.
 */

import { assert } from "@std/assert";
import { SERVER } from "../_programs.ts";
import { prng } from "../_helpers.ts";

/** The TCP backends every case runs on (`--backend`). */
export const BACKENDS = ["epoll", "deno"] as const;

/** The ./server program in a subprocess, with its resident memory and descriptors readable. */
export class WatchedServer implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #stdout: ReadableStreamDefaultReader<string>;
  #stdoutText = "";
  #stderrText = "";
  /** Reads stderr as it comes: a pipe nobody reads fills up and blocks the server's logging. */
  readonly #stderrDone: Promise<void>;
  #onStderr: (() => void) | null = null;
  port = 0;

  /**
   * Starts `deno run -A src/cli/server.ts --port 0 ...args`; with `fileLimit`,
   * under `ulimit -n fileLimit` (the shell execs deno, so the pid is the server's).
   */
  constructor(args: string[], options: { fileLimit?: number; denoFlags?: string[] } = {}) {
    const deno = [Deno.execPath(), "run", "-A", ...(options.denoFlags ?? [])];
    const command = [...deno, "--quiet", SERVER, "--port", "0", ...args];
    const child = options.fileLimit === undefined
      ? new Deno.Command(command[0], { args: command.slice(1), ...PIPES }).spawn()
      : new Deno.Command("sh", {
        args: ["-c", `ulimit -n ${options.fileLimit} && exec "$@"`, "sh", ...command],
        ...PIPES,
      }).spawn();
    this.#child = child;
    this.#stdout = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#stderrDone = (async () => {
      for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
        this.#stderrText += text;
        this.#onStderr?.();
      }
      this.#onStderr?.();
    })();
  }

  get pid(): number {
    return this.#child.pid;
  }

  /** Waits for the "listening on HOST:PORT" line and reads the port from it. */
  async ready(): Promise<this> {
    while (!this.#stdoutText.includes("\n")) {
      const { value, done } = await this.#stdout.read();
      if (done) {
        throw new Error(`the server exited before listening: ${await this.#log()}`);
      }
      this.#stdoutText += value;
    }
    const match = this.#stdoutText.match(/listening on [^ ]*:(\d+) /);
    if (!match) throw new Error(`no port in ${JSON.stringify(this.#stdoutText)}`);
    this.port = Number(match[1]);
    return this;
  }

  /**
   * Resident memory now and at its peak (VmRSS and VmHWM), and the part of
   * it now that the process allocated (RssAnon), in bytes. The resident
   * pages of the program's own files (the `deno` binary: 36 MiB of a fresh
   * server's 54) come and go as the host evicts them and the process reads
   * them back (this host's DAMON pages out cold memory: 3.8 GB in its first
   * 90 minutes one day), so a server's resident memory grew by 100 and 117
   * MiB in two runs of the budget case that grows it by 82 in others: the
   * bounds on what the server holds go by `anon`.
   */
  memory(): { rss: number; peak: number; anon: number } {
    const status = Deno.readTextFileSync(`/proc/${this.pid}/status`);
    const kib = (field: string) =>
      Number(status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"))![1]);
    return { rss: kib("VmRSS") * 1024, peak: kib("VmHWM") * 1024, anon: kib("RssAnon") * 1024 };
  }

  /** How many descriptors the server has open. */
  openFds(): number {
    let count = 0;
    for (const _ of Deno.readDirSync(`/proc/${this.pid}/fd`)) count++;
    return count;
  }

  /**
   * How many sockets, pipes and epoll/event descriptors the server has open:
   * what a connection could leak. Deno's own cache files are left out: it
   * opens and closes them while compiling, at moments of its own, so a count
   * of everything taken just after start-up can be one too high.
   */
  openIoFds(): number {
    let count = 0;
    for (const { name } of Deno.readDirSync(`/proc/${this.pid}/fd`)) {
      try {
        if (!Deno.readLinkSync(`/proc/${this.pid}/fd/${name}`).startsWith("/")) count++;
      } catch {
        // Closed since the directory was read.
      }
    }
    return count;
  }

  /** The server's stderr so far. */
  get logSoFar(): string {
    return this.#stderrText;
  }

  /** Reads the server's stderr until it contains `text`. */
  async waitForLog(text: string): Promise<void> {
    let ended = false;
    this.#stderrDone.then(() => ended = true);
    while (!this.#stderrText.includes(text)) {
      if (ended) throw new Error(`the server's log ended without ${JSON.stringify(text)}`);
      await new Promise<void>((resolve) => this.#onStderr = resolve);
    }
    this.#onStderr = null;
  }

  /** Sends `signal`, waits for the exit; returns the code, the time it took and all of stderr. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<{ code: number; ms: number; log: string }> {
    const start = performance.now();
    this.#child.kill(signal);
    const { code } = await this.#child.status;
    const ms = performance.now() - start;
    await this.#stdout.cancel().catch(() => {});
    return { code, ms, log: await this.#log() };
  }

  /** All of stderr, once it has ended. */
  async #log(): Promise<string> {
    await this.#stderrDone;
    return this.#stderrText;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await this.#child.status;
    await this.#stdout.cancel().catch(() => {});
    await this.#stderrDone;
  }
}

const PIPES = { stdin: "null", stdout: "piped", stderr: "piped" } as const;

/**
 * A long random byte sequence that any connection can send from any offset
 * and check again from the same offset: no copy of what was sent is kept.
 * Its length is prime, so no chunking lines up with a repetition.
 */
export class Pattern {
  static readonly LENGTH = 1_048_573; // a prime just under 1 MiB
  readonly #bytes = new Uint8Array(2 * Pattern.LENGTH);

  constructor(seed = 7) {
    const random = prng(seed);
    for (let i = 0; i < Pattern.LENGTH; i++) this.#bytes[i] = Math.floor(random() * 256);
    this.#bytes.copyWithin(Pattern.LENGTH, 0, Pattern.LENGTH);
  }

  /** `length` bytes (at most LENGTH) of the stream at `position`. */
  slice(position: number, length: number): Uint8Array {
    const start = position % Pattern.LENGTH;
    return this.#bytes.subarray(start, start + length);
  }

  /** The index of the first byte of `data` that differs from the stream at `position`, or -1. */
  mismatch(data: Uint8Array, position: number): number {
    for (let done = 0; done < data.length;) {
      const expected = this.slice(position + done, Math.min(data.length - done, Pattern.LENGTH));
      for (let i = 0; i < expected.length; i++) {
        if (data[done + i] !== expected[i]) return done + i;
      }
      done += expected.length;
    }
    return -1;
  }
}

/** Runs `task(i)` for i in 0..count-1 with at most `limit` running at once. */
export async function pool(
  count: number,
  limit: number,
  task: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
}

/**
 * Prints one figure for RELIABILITY.md, marked so it can be found in the
 * output; with `FIGURES_FILE` set (`deno task test:stress:report`), also
 * appends it to that file as a JSON line.
 */
export function figure(caseName: string, values: Record<string, string | number>): void {
  const text = Object.entries(values).map(([k, v]) => `${k}=${v}`).join(" ");
  console.log(`FIGURE ${caseName}: ${text}`);
  const file = Deno.env.get("FIGURES_FILE");
  if (file) {
    Deno.writeTextFileSync(file, JSON.stringify({ case: caseName, values }) + "\n", {
      append: true,
    });
  }
}

/** MiB, with one decimal. */
export const mib = (bytes: number): string => (bytes / 1048576).toFixed(1);

/** Asserts the server's counters line says what we expect. */
export function assertLogged(log: string, text: string): void {
  assert(
    log.includes(text),
    `the server's log lacks ${JSON.stringify(text)}:\n${log.slice(-3000)}`,
  );
}

/** Polls until `ok()` holds, for at most `ms`: the server closes its side after ours. */
export async function settle(ok: () => boolean, ms = 5000): Promise<boolean> {
  for (const end = performance.now() + ms; !ok() && performance.now() < end;) {
    await new Promise((r) => setTimeout(r, 20));
  }
  return ok();
}
