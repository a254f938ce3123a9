/**
 * The server program's admin listener (`--admin-port`): /healthz, /readyz
 * (503 while the server drains) and /metrics in the Prometheus text format,
 * checked by `promtool check metrics`, asked with `curl` as an operator or a
 * probe would, and the figures moving with real traffic, on both backends
 * and with `--workers 2`.
 */

import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import { installed, run, SERVER, ServerProcess } from "./_programs.ts";
import {
  decode,
  dial,
  echoOf,
  encode,
  outcome,
  readExactly,
  readToEnd,
  writeAll,
} from "./_helpers.ts";
import { ask, peer } from "./_udp.ts";

const CURL = installed("curl");
const PROMTOOL = installed("promtool");
if (!CURL) console.warn("curl is not installed: the admin tests ask with fetch instead");
if (!PROMTOOL) console.warn("promtool is not installed: the metrics are not checked by it");

/** An answer of the admin listener. */
interface Answer {
  status: number;
  contentType: string;
  body: string;
}

/** Asks `url` with curl (fetch where curl is missing). */
async function get(url: string, method = "GET"): Promise<Answer> {
  if (!CURL) {
    const response = await fetch(url, { method });
    const body = await response.text();
    return { status: response.status, contentType: response.headers.get("content-type")!, body };
  }
  const { code, stdout, stderr } = await new Deno.Command("curl", {
    args: ["-sS", "-m", "30", "-X", method, "-o", "-", "-w", "\n%{http_code} %{content_type}", url],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(code, 0, `curl ${url}: ${decode(stderr)}`);
  const text = decode(stdout);
  const end = text.lastIndexOf("\n");
  const [status, ...type] = text.slice(end + 1).split(" ");
  return { status: Number(status), contentType: type.join(" "), body: text.slice(0, end) };
}

/** The samples of an exposition text, by `name{labels}`. */
function samplesOf(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

/** Runs `promtool check metrics` on `text` (where it is installed); fails on any complaint. */
async function checkWithPromtool(text: string): Promise<void> {
  if (!PROMTOOL) return;
  const child = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(encode(text));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  const said = decode(stdout) + decode(stderr);
  assertEquals(code, 0, `promtool check metrics: ${said}\n${text}`);
  assertEquals(said.trim(), "", `promtool check metrics: ${said}`);
}

/** A server program with an admin listener: its echo port and its admin base URL. */
class AdminServer {
  readonly server: ServerProcess;
  admin = "";

  constructor(args: string[]) {
    this.server = new ServerProcess([...args, "--admin-port", "0"]);
  }

  /** Waits for `listeners` startup lines, then the admin line after them. */
  async ready(listeners: number): Promise<this> {
    await this.server.ready(listeners + 1);
    for (const line of this.server.lines.slice(0, listeners)) {
      assertMatch(line, /^@x\/echo server listening on /);
    }
    const line = this.server.lines[listeners];
    const match = line.match(
      /^@x\/echo admin listening on (http:\/\/127\.0\.0\.1:\d+) \(healthz, readyz, metrics\)$/,
    );
    if (match === null) throw new Error(`no admin line: ${JSON.stringify(line)}`);
    this.admin = match[1];
    return this;
  }

  get port(): number {
    return this.server.port;
  }

  /** Scrapes /metrics, checks it with promtool and returns its samples. */
  async metrics(): Promise<Map<string, number>> {
    const { status, contentType, body } = await get(`${this.admin}/metrics`);
    assertEquals(status, 200, body);
    assertEquals(contentType, "text/plain; version=0.0.4; charset=utf-8");
    await checkWithPromtool(body);
    return samplesOf(body);
  }

  /** Scrapes until `condition` holds of the samples (bounded), and returns them. */
  async metricsWhen(
    condition: (samples: Map<string, number>) => boolean,
    what: string,
  ): Promise<Map<string, number>> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const samples = await this.metrics();
      if (condition(samples)) return samples;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${[...samples]}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.server[Symbol.asyncDispose]();
  }
}

/** The value of `name` for the listener `transport` on `port` (with a `reason`, if given). */
function valueOf(
  samples: Map<string, number>,
  name: string,
  transport: "tcp" | "udp",
  port: number,
  reason?: string,
): number {
  const labels = `transport="${transport}",address="127.0.0.1:${port}"` +
    (reason === undefined ? "" : `,reason="${reason}"`);
  const value = samples.get(`${name}{${labels}}`);
  if (value === undefined) throw new Error(`no ${name}{${labels}} in ${[...samples.keys()]}`);
  return value;
}

/** Sends `text` to the UDP echo on `port` from a new socket and returns the answer. */
async function udpEchoOf(port: number, text: string): Promise<string> {
  await using socket = await peer();
  return decode(await ask(socket, { transport: "udp", hostname: "127.0.0.1", port }, encode(text)));
}

/** A connection that has had one echo (so the server has surely accepted it). */
async function heldConnection(port: number): Promise<Deno.TcpConn> {
  const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port });
  await writeAll(conn, encode("held"));
  assertEquals(decode(await readExactly(conn, 4)), "held");
  return conn;
}

Deno.test("server program: --admin-port serves /healthz, /readyz and /metrics; other paths 404", async () => {
  await using server = await new AdminServer(["--transport", "tcp,udp"]).ready(2);
  const healthz = await get(`${server.admin}/healthz`);
  assertEquals([healthz.status, healthz.body], [200, "ok\n"]);
  const readyz = await get(`${server.admin}/readyz`);
  assertEquals([readyz.status, readyz.body], [200, "ready\n"]);
  assertEquals((await get(`${server.admin}/metrics?x=1`)).status, 200);
  assertEquals((await get(`${server.admin}/`)).status, 404);
  assertEquals((await get(`${server.admin}/metricsz`)).status, 404);
  assertEquals((await get(`${server.admin}/healthz/more`)).status, 404);
  assertEquals((await get(`${server.admin}/metrics`, "POST")).status, 405);
  const samples = await server.metrics();
  const { port } = server;
  // Every listener family, for each transport, and the process's.
  for (
    const name of [
      "echo_open_connections",
      "echo_connections_total",
      "echo_connections_closed_idle_total",
      "echo_received_bytes_total",
      "echo_sent_bytes_total",
      "echo_buffered_bytes",
      "echo_budget_pauses_total",
    ]
  ) {
    assertEquals(valueOf(samples, name, "tcp", port), 0, name);
  }
  for (const reason of ["limit", "proxy_header", "untrusted"]) {
    assertEquals(valueOf(samples, "echo_connections_refused_total", "tcp", port, reason), 0);
  }
  for (const name of ["echo_datagrams_received_total", "echo_datagrams_sent_total"]) {
    assertEquals(valueOf(samples, name, "udp", port), 0, name);
  }
  for (const reason of ["forbidden_port", "own_address", "rate_limited", "overflow", "too_large"]) {
    assertEquals(valueOf(samples, "echo_datagrams_dropped_total", "udp", port, reason), 0);
  }
  assertEquals(valueOf(samples, "echo_datagram_send_errors_total", "udp", port), 0);
  assertEquals(samples.get("echo_workers"), 0);
  assertEquals(samples.get('echo_build_info{version="0.1.0",deno="' + Deno.version.deno + '"}'), 1);
  assert(samples.get("process_resident_memory_bytes")! > 1_000_000);
  assert(samples.get("process_open_fds")! > 3);
  assertEquals(await server.server.stop(), 0);
});

for (const backend of ["epoll", "deno"]) {
  Deno.test(`server program: the TCP metrics move with traffic (${backend} backend)`, async () => {
    await using server = await new AdminServer(["--backend", backend]).ready(1);
    const { port } = server;
    const before = await server.metrics();
    assertEquals(valueOf(before, "echo_connections_total", "tcp", port), 0);
    const texts = ["a", "hello", "x".repeat(100_000), "", "last one"];
    for (const text of texts) assertEquals(await echoOf(port, text), text);
    const bytes = texts.reduce((sum, text) => sum + text.length, 0);
    const held = await heldConnection(port);
    const after = await server.metrics();
    assertEquals(valueOf(after, "echo_connections_total", "tcp", port), texts.length + 1);
    assertEquals(valueOf(after, "echo_open_connections", "tcp", port), 1);
    assertEquals(valueOf(after, "echo_received_bytes_total", "tcp", port), bytes + 4);
    assertEquals(valueOf(after, "echo_sent_bytes_total", "tcp", port), bytes + 4);
    held.close();
    await server.metricsWhen(
      (samples) => valueOf(samples, "echo_open_connections", "tcp", port) === 0,
      "the held connection to close",
    );
    assertEquals(await server.server.stop(), 0);
  });
}

Deno.test("server program: the UDP metrics move with datagrams", async () => {
  await using server = await new AdminServer(["--udp"]).ready(1);
  const { port } = server;
  for (let i = 0; i < 3; i++) assertEquals(await udpEchoOf(port, `datagram ${i}`), `datagram ${i}`);
  const samples = await server.metrics();
  assertEquals(valueOf(samples, "echo_datagrams_received_total", "udp", port), 3);
  assertEquals(valueOf(samples, "echo_datagrams_sent_total", "udp", port), 3);
  assertEquals(valueOf(samples, "echo_datagrams_dropped_total", "udp", port, "own_address"), 0);
  assertEquals([...samples.keys()].filter((key) => key.includes('transport="tcp"')), []);
  assertEquals(await server.server.stop(), 0);
});

Deno.test("server program: --max-connections 1 counts the refused connection by reason limit", async () => {
  await using server = await new AdminServer(["--max-connections", "1"]).ready(1);
  const { port } = server;
  const held = await heldConnection(port);
  const refused = await dial({ transport: "tcp", hostname: "127.0.0.1", port });
  // Closed at once, unanswered.
  assertEquals((await readToEnd(refused).catch(() => new Uint8Array())).length, 0);
  refused.close();
  const samples = await server.metricsWhen(
    (samples) => valueOf(samples, "echo_connections_refused_total", "tcp", port, "limit") > 0,
    "the refusal to be counted",
  );
  assertEquals(valueOf(samples, "echo_connections_refused_total", "tcp", port, "limit"), 1);
  assertEquals(valueOf(samples, "echo_connections_total", "tcp", port), 1);
  assertEquals(valueOf(samples, "echo_open_connections", "tcp", port), 1);
  held.close();
  assertEquals(await server.server.stop(), 0);
});

Deno.test("server program: /readyz answers 503 while the server drains; the admin listener closes at the end", async () => {
  await using server = await new AdminServer([]).ready(1);
  const { port } = server;
  const adminPort = Number(new URL(server.admin).port);
  assertEquals((await get(`${server.admin}/readyz`)).status, 200);
  // A client that sends much and reads nothing: the server holds echoes it cannot send, and its
  // drain waits for them (up to 10 s) until the client reads.
  const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port });
  const size = 32 * 1024 * 1024;
  const writing = writeAll(conn, new Uint8Array(size)).catch(() => {});
  await server.metricsWhen(
    (samples) => valueOf(samples, "echo_buffered_bytes", "tcp", port) > 0,
    "echoes waiting for the client",
  );
  server.server.child.kill("SIGTERM");
  const deadline = Date.now() + 8_000;
  let readyz = await get(`${server.admin}/readyz`);
  while (readyz.status === 200 && Date.now() < deadline) {
    readyz = await get(`${server.admin}/readyz`);
  }
  assertEquals([readyz.status, readyz.body], [503, "draining\n"]);
  // Still draining (the client has read nothing): health and metrics are still served.
  assertEquals((await get(`${server.admin}/healthz`)).status, 200);
  assertEquals(valueOf(await server.metrics(), "echo_open_connections", "tcp", port), 1);
  // The client reads: the drain ends, the program exits 0, and the admin port is closed.
  // (The server closes with the rest of what was written unread: a reset may end the reading.)
  let echoed = 0;
  const buffer = new Uint8Array(65536);
  try {
    for (let n; (n = await conn.read(buffer)) !== null;) echoed += n;
  } catch {
    // Reset.
  }
  conn.close();
  await writing;
  assert(echoed > 0, "the echoes held during the drain were sent");
  assertEquals((await server.server.child.status).code, 0);
  await assertRejects(() => Deno.connect({ hostname: "127.0.0.1", port: adminPort }));
});

Deno.test("server program: with --workers 2 the metrics add up both workers", async () => {
  await using server = await new AdminServer(["--workers", "2", "--transport", "tcp,udp"])
    .ready(2);
  const { port } = server;
  const connections = 20;
  for (let i = 0; i < connections; i++) assertEquals(await echoOf(port, `hi ${i}`), `hi ${i}`);
  for (let i = 0; i < 4; i++) assertEquals(await udpEchoOf(port, `datagram ${i}`), `datagram ${i}`);
  const held = await heldConnection(port);
  const samples = await server.metrics();
  assertEquals(samples.get("echo_workers"), 2);
  assertEquals(samples.get("echo_worker_restarts_total"), 0);
  assertEquals(valueOf(samples, "echo_connections_total", "tcp", port), connections + 1);
  assertEquals(valueOf(samples, "echo_open_connections", "tcp", port), 1);
  const bytes = 4 + [...Array(connections).keys()].reduce((sum, i) => sum + `hi ${i}`.length, 0);
  assertEquals(valueOf(samples, "echo_received_bytes_total", "tcp", port), bytes);
  assertEquals(valueOf(samples, "echo_datagrams_received_total", "udp", port), 4);
  assertEquals(valueOf(samples, "echo_datagrams_sent_total", "udp", port), 4);
  held.close();
  assertEquals(await server.server.stop("SIGINT"), 0);
  // Both workers took connections (the kernel spreads them): the sum is of both.
  const perWorker = (await server.server.stderr).match(
    /All workers on tcp [^ ]+ stopped: .*accepted by worker: 0: (\d+), 1: (\d+)/,
  );
  if (perWorker === null) throw new Error("no totals line");
  const [first, second] = [Number(perWorker[1]), Number(perWorker[2])];
  assertEquals(first + second, connections + 1);
  assert(first > 0 && second > 0, `each worker took some: ${first} and ${second}`);
});

Deno.test("server program: an admin port in use exits 1 with one line naming it", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = taken.addr;
  for (const extra of [[], ["--workers", "2"]]) {
    const { code, stdout, stderr } = await run(SERVER, [
      "--port",
      "0",
      "--admin-port",
      String(port),
      ...extra,
    ]);
    assertEquals(code, 1, stderr);
    assertEquals(stdout, "", "no listener line");
    const lines = stderr.trimEnd().split("\n");
    assertEquals(lines.length, 1, stderr);
    assertMatch(
      lines[0],
      new RegExp(`^echo server: Cannot listen .*127\\.0\\.0\\.1:${port}: .*in use`),
    );
  }
});

Deno.test("server program: SIGINT sends the answers --udp --delay holds, then exits 0", async () => {
  await using server = await new AdminServer(["--udp", "--delay", "1000"]).ready(1);
  await using socket = await peer();
  await socket.send(encode("hello"), {
    transport: "udp",
    hostname: "127.0.0.1",
    port: server.port,
  });
  // Received, so held for its delay, before the stop.
  await server.metricsWhen(
    (samples) => valueOf(samples, "echo_datagrams_received_total", "udp", server.port) === 1,
    "the datagram to be received",
  );
  const code = server.server.stop("SIGINT");
  const answer = socket.receive();
  // Bounded: an answer dropped at the stop would leave it waiting.
  assertEquals(await outcome(answer), "resolved");
  assertEquals(decode((await answer)![0]), "hello");
  assertEquals(await code, 0);
});
