/**
 * Every program in examples/ run as a subprocess, the way its header says to
 * run it, against real clients (our sockets, the other examples, nc).
 */

import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { decode, dial, encode, readExactly, readToEnd, writeAll } from "./_helpers.ts";
import { run } from "./_programs.ts";
import { peer } from "./_udp.ts";
import { serveEcho } from "../src/echo/serve.ts";

const example = (name: string) => new URL(`../examples/${name}`, import.meta.url).pathname;

/** An example server running on port 0, with its port read from its "Serving on" line. */
class RunningExample implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #stdout: ReadableStreamDefaultReader<string>;
  readonly #stderr: Promise<string>;
  #output = "";
  port = 0;

  constructor(readonly name: string) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", example(name), "0"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdout = this.#child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#stderr = new Response(this.#child.stderr).text();
  }

  /** Waits for the "Serving on 127.0.0.1:PORT" line. */
  async ready(): Promise<this> {
    while (!/Serving on .*\n/.test(this.#output)) {
      const { value, done } = await this.#stdout.read();
      if (done) throw new Error(`${this.name} exited: ${await this.#stderr}`);
      this.#output += value;
    }
    this.port = Number(this.#output.match(/Serving on 127\.0\.0\.1:(\d+)/)![1]);
    return this;
  }

  /** Reads stdout until it contains `text`. */
  async waitForOutput(text: string): Promise<void> {
    while (!this.#output.includes(text)) {
      const { value, done } = await this.#stdout.read();
      if (done) throw new Error(`${this.name} ended without printing ${JSON.stringify(text)}`);
      this.#output += value;
    }
  }

  /** Waits for the program to exit (sending `signal` first, if given); returns its output. */
  async exit(signal?: Deno.Signal): Promise<{ code: number; stdout: string; stderr: string }> {
    if (signal) this.#child.kill(signal);
    for (let r; !(r = await this.#stdout.read()).done;) this.#output += r.value;
    const { code } = await this.#child.status;
    return { code, stdout: this.#output, stderr: await this.#stderr };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await this.exit();
  }
}

async function start(name: string): Promise<RunningExample> {
  return await new RunningExample(name).ready();
}

const portOf = (conn: Deno.Conn) => (conn.localAddr as Deno.NetAddr).port;

Deno.test("examples/blocking_server.ts serves one client until quit, then exits", async () => {
  await using server = await start("blocking_server.ts");
  const first = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.port });
  // A second client connects and sends its whole request before the first says anything.
  const second = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.port });
  await writeAll(second, encode("me too\nquit\n"));

  await writeAll(first, encode("hello\nqu")); // "quit\n" split over two reads
  await server.waitForOutput("Received");
  await writeAll(first, encode("it\n"));
  assertEquals(decode(await readToEnd(first)), "hello\nquit\n");
  first.close();

  const { code, stdout } = await server.exit();
  assertEquals(code, 0);
  assertStringIncludes(stdout, `Connected by 127.0.0.1:${portOf(first)}`);
  assertStringIncludes(stdout, "Sent 11 bytes back; closing");
  // It never served the second client: that one sees its connection end with nothing.
  const unanswered = await readToEnd(second).catch(() => new Uint8Array(0));
  assertEquals(unanswered.length, 0);
  second.close();
});

Deno.test("examples/many_clients_server.ts answers a second client while the first is open", async () => {
  await using server = await start("many_clients_server.ts");
  const first = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.port });
  await writeAll(first, encode("first\n"));
  const second = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.port });
  await writeAll(second, encode("second\nquit\n"));
  // The blocking server would still be waiting on the first client here.
  assertEquals(decode(await readToEnd(second)), "second\nquit\n");
  second.close();

  await writeAll(first, encode("quit\n"));
  assertEquals(decode(await readToEnd(first)), "first\nquit\n");
  first.close();
  const { code, stdout } = await server.exit("SIGINT");
  assertEquals(code, 0);
  assertStringIncludes(stdout, `Echoed 12 bytes to 127.0.0.1:${portOf(second)}`);
  assertStringIncludes(stdout, `Echoed 11 bytes to 127.0.0.1:${portOf(first)}`);
});

Deno.test("examples/protocol_server.ts echoes, logs each callback and checks its socket options", async () => {
  await using server = await start("protocol_server.ts");
  const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.port });
  await writeAll(conn, encode("hi there"));
  conn.closeWrite();
  assertEquals(decode(await readToEnd(conn)), "hi there");
  const peer = `127.0.0.1:${portOf(conn)}`;
  conn.close();
  await server.waitForOutput("Connection lost");
  const { code, stdout } = await server.exit("SIGINT");
  assertEquals(code, 0);
  assertStringIncludes(stdout, `Connection from ${peer}`);
  for (const line of ["TCP_NODELAY = true", "SO_KEEPALIVE = true", "TCP_KEEPIDLE = 60"]) {
    assertStringIncludes(stdout, `${line} (ok)`);
  }
  assertStringIncludes(stdout, "TCP_KEEPINTVL = 10 (ok)");
  assertStringIncludes(stdout, "TCP_KEEPCNT = 5 (ok)");
  assert(!stdout.includes("MISMATCH"), stdout);
  assertStringIncludes(stdout, `Data received from ${peer}: "hi there"`);
  assertStringIncludes(stdout, `${peer} finished sending`);
  assertStringIncludes(stdout, `Connection lost with ${peer}`);
});

Deno.test("examples/streams_server.ts answers up to 100 bytes once, with keep-alive on", async () => {
  await using server = await start("streams_server.ts");
  const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.port });
  await writeAll(conn, encode("x".repeat(150)));
  const answer = decode(await readToEnd(conn)); // closed without our EOF
  conn.close();
  assert(answer.length >= 1 && answer.length <= 100, `${answer.length} bytes`);
  assertEquals(answer, "x".repeat(answer.length));
  const { code, stdout } = await server.exit("SIGINT");
  assertEquals(code, 0);
  assertMatch(stdout, new RegExp(`Received "x{1,100}" from 127\\.0\\.0\\.1:${portOf(conn)}`));
  assertStringIncludes(stdout, "Keep-alive on: idle 600 s, interval 30 s, 4 probes");
  assertStringIncludes(stdout, "Close the connection");
});

Deno.test("examples/udp_client.ts and udp_echo_server.ts: each line comes back", async () => {
  await using server = await start("udp_echo_server.ts");
  const client = await run(example("udp_client.ts"), [String(server.port)], "one\ntwo words\n");
  assertEquals(client.code, 0, client.stderr);
  assertStringIncludes(client.stdout, "Received: one\nReceived: two words\n");

  const { code, stdout } = await server.exit("SIGINT");
  assertEquals(code, 0);
  assertMatch(stdout, /Received "one" from 127\.0\.0\.1:\d+/);
  assertStringIncludes(stdout, "Received 2 datagrams, sent 2, dropped 0");
});

Deno.test("examples/udp_echo_server.ts answers any UDP socket and counts what it served", async () => {
  await using server = await start("udp_echo_server.ts");
  await using socket = await peer();
  const to = { transport: "udp", hostname: "127.0.0.1", port: server.port } as const;
  await socket.send(encode("ping"), to);
  const answer = await socket.receive();
  assertEquals(decode(answer![0]), "ping");
  const { code, stdout } = await server.exit("SIGINT");
  assertEquals(code, 0);
  assertStringIncludes(stdout, `Received "ping" from 127.0.0.1:${socket.addr.port}`);
  assertStringIncludes(stdout, "Received 1 datagrams, sent 1, dropped 0");
});

Deno.test("examples/udp_client.ts says so when nothing answers", async () => {
  await using silent = await peer(); // bound, never answers
  const client = await run(example("udp_client.ts"), [String(silent.addr.port)], "hello?\n");
  assertEquals(client.code, 0, client.stderr);
  assertMatch(client.stdout, /No answer: .*127\.0\.0\.1:\d+.*3/);
  // It really asked three times.
  for (let i = 0; i < 3; i++) assertEquals(decode((await silent.receive())![0]), "hello?");
});

Deno.test("examples/tcp_client.ts sends each stdin line and prints the echo", async () => {
  await using server = serveEcho({ hostname: "127.0.0.1", port: 0 });
  const client = await run(
    example("tcp_client.ts"),
    [String(server.addr.port)],
    "one\ntwo words\n",
  );
  assertEquals(client.code, 0, client.stderr);
  assertStringIncludes(client.stdout, `Connected to 127.0.0.1:${server.addr.port}`);
  assertStringIncludes(client.stdout, "Received: one\nReceived: two words\n");
});

Deno.test("examples/tcp_client.ts ends cleanly when the server closes", async () => {
  await using server = serveEcho({ hostname: "127.0.0.1", port: 0, mode: "once" });
  const client = await run(example("tcp_client.ts"), [String(server.addr.port)], "one\ntwo\n");
  assertEquals(client.code, 0, client.stderr);
  assertStringIncludes(client.stdout, "Received: one\n");
  assertMatch(client.stdout, /The server closed the connection|Connection failed: /);
});

Deno.test("examples/error_isolation.ts: boom closes that connection only", async () => {
  await using server = await start("error_isolation.ts");
  const calm = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.port });
  const loud = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.port });
  await writeAll(calm, encode("hello\n"));
  assertEquals(decode(await readExactly(calm, 6)), "hello\n");

  await writeAll(loud, encode("boom\n"));
  const rest = await readToEnd(loud).catch(() => new Uint8Array(0)); // EOF or reset
  assertEquals(rest.length, 0);
  loud.close();

  await writeAll(calm, encode("still here\n"));
  assertEquals(decode(await readExactly(calm, 11)), "still here\n");
  const late = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.port });
  await writeAll(late, encode("new one\n"));
  assertEquals(decode(await readExactly(late, 8)), "new one\n");
  late.close();
  calm.close();

  const { code, stderr } = await server.exit("SIGINT");
  assertEquals(code, 0);
  assertMatch(
    stderr,
    new RegExp(`threw for "127\\.0\\.0\\.1:${portOf(loud)}".*the client said boom`),
  );
});

Deno.test("examples/generator_scheduler.ts interleaves clients on one generator loop", async () => {
  await using server = await start("generator_scheduler.ts");
  const a = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.port });
  const b = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.port });
  await writeAll(a, encode("a1"));
  assertEquals(decode(await readExactly(a, 6)), "GOT:a1");
  await writeAll(b, encode("b1"));
  assertEquals(decode(await readExactly(b, 6)), "GOT:b1");
  await writeAll(a, encode("a2"));
  assertEquals(decode(await readExactly(a, 6)), "GOT:a2");
  a.close();
  b.closeWrite();
  assertEquals((await readToEnd(b)).length, 0);
  b.close();

  const { code, stdout } = await server.exit("SIGINT");
  assertEquals(code, 0);
  assertStringIncludes(stdout, `Connection from 127.0.0.1:${portOf(a)}`);
  assertStringIncludes(stdout, `127.0.0.1:${portOf(b)} closed`);
});

Deno.test("examples/socket_options.ts reads back every option it set", async () => {
  const { code, stdout, stderr } = await run(example("socket_options.ts"), []);
  assertEquals(code, 0, stderr);
  const rows = [...stdout.matchAll(/^ {2}(\S+)\s+(\S+)\s+(\S+)$/gm)]
    .filter(([, name]) => name !== "option");
  const names = new Set(rows.map(([, name]) => name));
  for (
    const name of [
      "SO_REUSEADDR",
      "SO_REUSEPORT",
      "SO_RCVBUF",
      "SO_SNDBUF",
      "TCP_NODELAY",
      "SO_KEEPALIVE",
      "TCP_KEEPIDLE",
      "TCP_KEEPINTVL",
      "TCP_KEEPCNT",
      "TCP_QUICKACK",
    ]
  ) assert(names.has(name), `${name} missing from\n${stdout}`);
  let compared = 0;
  for (const [line, name, asked, kernel] of rows) {
    if (asked === "-") continue; // not asked for
    if (name === "SO_RCVBUF" || name === "SO_SNDBUF") {
      assert(Number(kernel) >= Number(asked), line); // Linux reports double, capped by rmem_max
    } else {
      assertEquals(kernel, asked, line);
    }
    compared++;
  }
  // Listener 9 (with SO_REUSEPORT, on the epoll backend), client 8, accepted 7, UDP 3.
  assertEquals(compared, 27, stdout);
});

Deno.test("every example is run by a test in this file", async () => {
  const source = await Deno.readTextFile(new URL(import.meta.url));
  for await (const entry of Deno.readDir(new URL("../examples/", import.meta.url))) {
    assertStringIncludes(source, `"${entry.name}"`, `examples/${entry.name} has no test`);
  }
});
