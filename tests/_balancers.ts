/**
 * Load balancers in front of the server program, as the README configures
 * them: HAProxy and nginx run in the foreground from the README's own config
 * blocks (only the ports and paths written there are replaced), HAProxy's
 * stats read through its stats socket, clients bound to another loopback
 * address through socat, and the failover scenario the test and the
 * reliability suite share.
 */

import { assert } from "@std/assert";
import { decode, encode, readToEnd, writeAll } from "./_helpers.ts";
import { installed, pipeThrough } from "./_programs.ts";
import { Pattern, type WatchedServer } from "./stress/_harness.ts";

const root = new URL("../", import.meta.url);

/**
 * The fenced block that follows `<!-- NAME -->` in the README, with each
 * `from → to` of `replace` applied; fails if a `from` is not in the block
 * (the README changed under the test).
 */
export function readmeConfig(name: string, replace: [string, string][] = []): string {
  const readme = Deno.readTextFileSync(new URL("README.md", root));
  const marker = `<!-- ${name} -->`;
  const at = readme.indexOf(marker);
  assert(at >= 0, `README.md has no ${marker}`);
  const block = readme.slice(at + marker.length).match(/^\s*```[a-z]*\n([\s\S]*?)\n```/);
  if (!block) throw new Error(`no fenced block right after ${marker} in README.md`);
  let text = block[1];
  for (const [from, to] of replace) {
    assert(text.includes(from), `the README's ${name} no longer has ${JSON.stringify(from)}`);
    text = text.replaceAll(from, to);
  }
  return text;
}

/** A port nothing listens on now (bound and released at once). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** A program in the foreground whose stderr is read as it comes; killed at disposal. */
class Foreground implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  #log = "";
  readonly #done: Promise<void>;

  constructor(command: string, args: string[]) {
    this.child = new Deno.Command(command, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const drain = async (stream: ReadableStream<Uint8Array>) => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) this.#log += text;
    };
    this.#done = Promise.all([drain(this.child.stdout), drain(this.child.stderr)]).then(() => {});
  }

  /** What it printed so far (stdout and stderr). */
  get log(): string {
    return this.#log;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await this.child.status;
    await this.#done;
  }
}

/** One server's row of HAProxy's `show stat`. */
export interface ServerStat {
  status: string;
  checkStatus: string;
  checkFailures: number;
  downTransitions: number;
  sessionsTotal: number;
}

/**
 * HAProxy (`haproxy -db -f CFG`) from the README's `haproxy.cfg` block, in
 * front of servers on `ports`, listening on a free port, its stats socket in
 * a temporary directory.
 */
export class Haproxy implements AsyncDisposable {
  static readonly available = installed("haproxy");
  readonly port = freePort();
  readonly dir = Deno.makeTempDirSync({ prefix: "echo-haproxy-" });
  readonly socket = `${this.dir}/admin.sock`;
  readonly #process: Foreground;

  constructor(ports: [number, number]) {
    const config = readmeConfig("haproxy.cfg", [
      ["/tmp/haproxy-echo.sock", this.socket],
      ["127.0.0.1:8888", `127.0.0.1:${this.port}`],
      ["127.0.0.1:9001", `127.0.0.1:${ports[0]}`],
      ["127.0.0.1:9002", `127.0.0.1:${ports[1]}`],
    ]);
    Deno.writeTextFileSync(`${this.dir}/haproxy.cfg`, config + "\n");
    this.#process = new Foreground("haproxy", ["-db", "-f", `${this.dir}/haproxy.cfg`]);
  }

  /** Its own output (warnings such as a server going DOWN). */
  get log(): string {
    return this.#process.log;
  }

  /** Sends one command to the stats socket and returns the answer. */
  async command(line: string): Promise<string> {
    const conn = await Deno.connect({ transport: "unix", path: this.socket });
    try {
      await writeAll(conn, encode(line + "\n"));
      return decode(await readToEnd(conn));
    } finally {
      conn.close();
    }
  }

  /** `show stat`, by server name (s1, s2). */
  async stats(): Promise<Map<string, ServerStat>> {
    const [head, ...rows] = (await this.command("show stat")).trim().split("\n");
    const columns = head.replace(/^# /, "").split(",");
    const at = (name: string) => columns.indexOf(name);
    const out = new Map<string, ServerStat>();
    for (const row of rows) {
      const field = row.split(",");
      if (field[at("svname")] === "FRONTEND" || field[at("svname")] === "BACKEND") continue;
      out.set(field[at("svname")], {
        status: field[at("status")],
        checkStatus: field[at("check_status")],
        checkFailures: Number(field[at("chkfail")]),
        downTransitions: Number(field[at("chkdown")]),
        sessionsTotal: Number(field[at("stot")]),
      });
    }
    return out;
  }

  /** Waits until the stats socket answers (HAProxy has read its config and bound). */
  async ready(timeoutMs = 10_000): Promise<this> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await this.stats();
        return this;
      } catch (error) {
        const { exited } = await Promise.race([
          this.#process.child.status.then(() => ({ exited: true })),
          new Promise<{ exited: boolean }>((r) => setTimeout(() => r({ exited: false }), 20)),
        ]);
        if (exited) throw new Error(`haproxy exited: ${this.log}`);
        if (Date.now() > deadline) throw new Error(`haproxy's stats socket: ${error}`);
      }
    }
  }

  /** Polls the stats (every 20 ms, for at most `timeoutMs`) until `ok` holds for them. */
  async until(
    ok: (stats: Map<string, ServerStat>) => boolean,
    what: string,
    timeoutMs = 10_000,
  ): Promise<Map<string, ServerStat>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const stats = await this.stats();
      if (ok(stats)) return stats;
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${what}: ${JSON.stringify([...stats])}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#process[Symbol.asyncDispose]();
    Deno.removeSync(this.dir, { recursive: true });
  }
}

/** Where Debian puts nginx's dynamic stream module (absent where it is built in). */
const NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so";

/** Whether nginx is installed with its stream module, built in or loadable. */
export function nginxWithStream(): boolean {
  if (!installed("nginx")) return false;
  const { stderr } = new Deno.Command("nginx", { args: ["-V"], stderr: "piped" }).outputSync();
  const built = decode(stderr);
  if (/--with-stream(\s|$)/.test(built)) return true;
  try {
    return /--with-stream=dynamic/.test(built) && Deno.statSync(NGINX_STREAM_MODULE).isFile;
  } catch {
    return false;
  }
}

/**
 * nginx in the foreground (`daemon off`, a temporary prefix, pid file and
 * error log there) with the README's `nginx.conf` stream block in front of
 * servers on `ports`. The lines around the block are what any nginx.conf
 * has; Debian builds the stream module as a module, so it is loaded here
 * (its package loads it from /etc/nginx/modules-enabled).
 */
export class Nginx implements AsyncDisposable {
  readonly port = freePort();
  readonly dir = Deno.makeTempDirSync({ prefix: "echo-nginx-" });
  readonly errorLog = `${this.dir}/error.log`;
  readonly #process: Foreground;

  constructor(ports: [number, number]) {
    const stream = readmeConfig("nginx.conf", [
      ["127.0.0.1:8888", `127.0.0.1:${this.port}`],
      ["127.0.0.1:9001", `127.0.0.1:${ports[0]}`],
      ["127.0.0.1:9002", `127.0.0.1:${ports[1]}`],
    ]);
    const { stderr } = new Deno.Command("nginx", { args: ["-V"], stderr: "piped" }).outputSync();
    const dynamic = /--with-stream=dynamic/.test(decode(stderr));
    const config = [
      ...(dynamic ? [`load_module ${NGINX_STREAM_MODULE};`] : []),
      "daemon off;",
      "master_process off;",
      `pid ${this.dir}/nginx.pid;`,
      `error_log ${this.errorLog} info;`,
      "events { worker_connections 256; }",
      stream,
    ].join("\n");
    Deno.writeTextFileSync(`${this.dir}/nginx.conf`, config);
    this.#process = new Foreground("nginx", [
      "-p",
      this.dir,
      "-e",
      this.errorLog,
      "-c",
      `${this.dir}/nginx.conf`,
    ]);
  }

  /** nginx's error log so far. */
  get log(): string {
    try {
      return Deno.readTextFileSync(this.errorLog) + this.#process.log;
    } catch {
      return this.#process.log;
    }
  }

  /** Waits until nginx accepts connections on its port. */
  async ready(timeoutMs = 10_000): Promise<this> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port: this.port })).close();
        return this;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`nginx did not listen: ${error}\n${this.log}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#process[Symbol.asyncDispose]();
    Deno.removeSync(this.dir, { recursive: true });
  }
}

/**
 * Sends `input` to 127.0.0.1:`port` from `bindAddress` (socat's `bind=`),
 * half-closes, and returns all that came back.
 */
export async function echoFrom(
  bindAddress: string,
  port: number,
  input: Uint8Array,
): Promise<Uint8Array> {
  const { code, stdout, stderr } = await pipeThrough("socat", [
    "-t",
    "5",
    "-T",
    "10",
    "-",
    `TCP:127.0.0.1:${port},bind=${bindAddress}`,
  ], input);
  assert(code === 0, `socat from ${bindAddress}: ${stderr}`);
  return stdout;
}

/** The lines of `ss -ltn` that listen on 127.0.0.1:`port`. */
export function ssListeners(port: number): string[] {
  const { stdout, success } = new Deno.Command("ss", { args: ["-ltnH"], stdout: "piped" })
    .outputSync();
  assert(success, "ss -ltn failed");
  return decode(stdout).split("\n").filter((line) =>
    line.trim().split(/\s+/)[3] === `127.0.0.1:${port}`
  );
}

/** Lines of a server's log that are warnings or errors. */
export function complaints(log: string): string[] {
  return log.split("\n").filter((line) => /\[(WRN|ERR|FTL)\]/.test(line));
}

/** HAProxy's health checks a server logged: its LOCAL connections, summed up once a second. */
export function healthChecks(log: string): number {
  return [...log.matchAll(/Answered (\d+) PROXY LOCAL connections \(health checks\)/g)]
    .reduce((sum, [, count]) => sum + Number(count), 0);
}

const pattern = new Pattern(11);

/**
 * A connection through the balancer that echoes chunks in a closed loop
 * (write one, read its echo whole, checking every byte), until told to stop.
 */
export class Streamer {
  sent = 0;
  received = 0;
  rounds = 0;
  /** How the connection ended when it was not we who ended it (null: it did not). */
  cutShort: string | null = null;
  readonly localPort: number;
  readonly #conn: Deno.TcpConn;
  #stop = false;
  readonly done: Promise<void>;

  private constructor(conn: Deno.TcpConn, readonly offset: number) {
    this.#conn = conn;
    this.localPort = conn.localAddr.port;
    this.done = this.#loop();
  }

  static async open(port: number, offset: number): Promise<Streamer> {
    return new Streamer(await Deno.connect({ hostname: "127.0.0.1", port }), offset);
  }

  /** Waits until it has completed `rounds` more round trips (or ended). */
  async after(rounds: number): Promise<void> {
    const target = this.rounds + rounds;
    while (this.rounds < target && this.cutShort === null && !this.#stop) {
      await new Promise<void>((resolve) => this.#onRound = resolve);
    }
  }
  #onRound: (() => void) | null = null;

  /** Ends the loop after the round in flight: half-closes and reads to the end. */
  async stop(): Promise<void> {
    this.#stop = true;
    this.#onRound?.();
    await this.done;
  }

  /** Bytes sent and never echoed. */
  get lost(): number {
    return this.sent - this.received;
  }

  async #loop(): Promise<void> {
    const buffer = new Uint8Array(65536);
    try {
      while (!this.#stop) {
        const size = 1024 + ((this.rounds * 7919) % 31744);
        await writeAll(this.#conn, pattern.slice(this.offset + this.sent, size));
        this.sent += size;
        while (this.received < this.sent) {
          const n = await this.#conn.read(buffer.subarray(0, this.sent - this.received));
          if (n === null) throw new Error("end of input mid-echo");
          const bad = pattern.mismatch(buffer.subarray(0, n), this.offset + this.received);
          if (bad >= 0) throw new Error(`byte ${this.received + bad} differs`);
          this.received += n;
        }
        this.rounds++;
        const wake = this.#onRound;
        this.#onRound = null;
        wake?.();
      }
      await this.#conn.closeWrite();
      if ((await this.#conn.read(buffer)) !== null) throw new Error("bytes after the last echo");
    } catch (error) {
      this.cutShort = error instanceof Error ? error.message : String(error);
      if (/differs|after the last/.test(this.cutShort)) throw error;
    } finally {
      this.#conn.close();
      const wake = this.#onRound;
      this.#onRound = null;
      wake?.();
    }
  }
}

/** The server (index into `servers`) whose log shows the connection from 127.0.0.1:`port`. */
export async function serverOf(servers: WatchedServer[], port: number): Promise<number> {
  const text = `Connection made with 127.0.0.1:${port} `;
  const deadline = Date.now() + 10_000;
  for (;;) {
    const at = servers.findIndex((server) => server.logSoFar.includes(text));
    if (at >= 0) return at;
    assert(Date.now() < deadline, `no server logged the connection from port ${port}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** One echo of a small message through HAProxy: null, or what went wrong. */
async function echoThrough(haproxy: Haproxy, name: string): Promise<string | null> {
  const text = `fresh ${name} `.repeat(20);
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: haproxy.port });
    try {
      await writeAll(conn, encode(text));
      await conn.closeWrite();
      const got = decode(await readToEnd(conn));
      return got === text ? null : `got ${got.length} of ${text.length} bytes`;
    } finally {
      conn.close();
    }
  } catch (error) {
    return String(error);
  }
}

/** What a failover did (see `failover`). */
export interface FailoverResult {
  /** Streaming connections on the server that stayed up, and the bytes they lost. */
  survivors: number;
  survivorBytesLost: number;
  survivorsCutShort: string[];
  /** Streaming connections on the stopped server, all reconnected and served by the other. */
  moved: number;
  movedBytesLost: number;
  movedCutShort: string[];
  movedToSurvivor: number;
  /** Milliseconds from SIGTERM to HAProxy's stats showing the stopped server DOWN. */
  markedDownMs: number;
  /** Connections opened once the stopped server has exited, and how many failed. */
  newConnections: number;
  newConnectionsFailed: number;
  newConnectionErrors: string[];
  /**
   * Connections opened between the SIGTERM and the exit, and how many got no
   * echo: HAProxy may hand one to the stopping server, which closes it unread.
   */
  duringShutdown: number;
  duringShutdownFailed: number;
  stoppedExitCode: number;
  stoppedLog: string;
}

/**
 * With HAProxy in front of `servers` (both UP): `streams` connections echo in
 * a closed loop; the first server gets SIGTERM while they do. Those it held
 * end; each opens a new connection and goes on. The others must lose no byte;
 * `fresh` new connections opened once it has exited must all be echoed.
 */
export async function failover(
  haproxy: Haproxy,
  servers: [WatchedServer, WatchedServer],
  streams: number,
  fresh: number,
): Promise<FailoverResult> {
  const streamers = await Promise.all(
    Array.from({ length: streams }, (_, i) => Streamer.open(haproxy.port, i * 65537)),
  );
  await Promise.all(streamers.map((s) => s.after(3)));
  const on = await Promise.all(streamers.map((s) => serverOf(servers, s.localPort)));
  assert(on.includes(0) && on.includes(1), `round robin put every stream on one server: ${on}`);

  const stopping = servers[0].stop();
  const signalled = performance.now();
  // Connections opened while it shuts down: HAProxy may hand one over just as it stops.
  const racing = Promise.all(Array.from({ length: 4 }, (_, i) => echoThrough(haproxy, `r${i}`)));
  // New connections once it has exited, before and after HAProxy marks it DOWN.
  const { code, log } = await stopping;
  const errors: string[] = [];
  const opening = (async () => {
    for (let i = 0; i < fresh; i++) {
      const error = await echoThrough(haproxy, `${i}`);
      if (error) errors.push(error);
    }
  })();
  const down = await haproxy.until(
    (stats) => stats.get("s1")?.status.startsWith("DOWN") ?? false,
    "HAProxy to mark s1 DOWN",
  );
  const markedDownMs = performance.now() - signalled;
  assert(down.get("s2")?.status === "UP", `s2 is ${down.get("s2")?.status}`);

  // The stopped server's streams ended; each goes on over a new connection.
  const onStopped = streamers.filter((_, i) => on[i] === 0);
  const survivors = streamers.filter((_, i) => on[i] === 1);
  await Promise.all(onStopped.map((s) => s.done));
  const moved = await Promise.all(
    onStopped.map((_, i) => Streamer.open(haproxy.port, (streams + i) * 65537)),
  );
  await Promise.all([...moved, ...survivors].map((s) => s.after(3)));
  const movedOn = await Promise.all(moved.map((s) => serverOf(servers, s.localPort)));
  await opening;
  const racingErrors = (await racing).filter((error) => error !== null);
  await Promise.all([...moved, ...survivors].map((s) => s.stop()));

  return {
    survivors: survivors.length,
    survivorBytesLost: survivors.reduce((sum, s) => sum + s.lost, 0),
    survivorsCutShort: survivors.flatMap((s) => s.cutShort ?? []),
    moved: moved.length,
    movedBytesLost: moved.reduce((sum, s) => sum + s.lost, 0),
    movedCutShort: moved.flatMap((s) => s.cutShort ?? []),
    movedToSurvivor: movedOn.filter((at) => at === 1).length,
    markedDownMs: Math.round(markedDownMs),
    newConnections: fresh,
    newConnectionsFailed: errors.length,
    newConnectionErrors: errors,
    duringShutdown: 4,
    duringShutdownFailed: racingErrors.length,
    stoppedExitCode: code,
    stoppedLog: log,
  };
}
