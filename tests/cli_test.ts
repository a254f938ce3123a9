import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { decode, dial, echoOf, encode, readExactly, readToEnd, writeAll } from "./_helpers.ts";
import {
  BENCH,
  CLIENT,
  installed,
  run,
  SERVER,
  ServerProcess,
  unprivilegedPortStart,
} from "./_programs.ts";

for (const api of ["protocol", "stream"]) {
  Deno.test(`server program (${api} API): echoes, then SIGTERM shuts it down with exit 0`, async () => {
    await using server = await new ServerProcess(["--api", api]).ready();
    assertMatch(
      server.firstLine,
      new RegExp(
        `listening on 127\\.0\\.0\\.1:\\d+ \\(tcp, ${api} API, echo mode, epoll backend; ` +
          `backlog \\d+, nodelay, ` +
          `no keepalive, rcvbuf \\d+, sndbuf \\d+, reuseaddr; max 67108864 bytes buffered\\)`,
      ),
    );
    assertEquals(await echoOf(server.port, "over the program"), "over the program");
    assertEquals(await server.stop("SIGTERM"), 0);
  });
}

Deno.test("server program: --backend deno serves through Deno's sockets and says so", async () => {
  await using server = await new ServerProcess(["--backend", "deno"]).ready();
  assertStringIncludes(server.firstLine, "echo mode, deno backend;");
  assertEquals(await echoOf(server.port, "through Deno"), "through Deno");
  assertEquals(await server.stop("SIGTERM"), 0);
});

Deno.test("server program: SIGINT with a connection open flushes, closes it and exits 0", async () => {
  await using server = await new ServerProcess(["--log-level", "info"]).ready();
  const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.port });
  await writeAll(conn, encode("pending"));
  const first = new Uint8Array(7);
  assertEquals(await conn.read(first), 7);
  const code = server.stop("SIGINT");
  assertEquals(await readToEnd(conn), new Uint8Array(0)); // closed by the shutdown
  conn.close();
  assertEquals(await code, 0);
  const log = await server.stderr;
  assertStringIncludes(log, "Connection made with 127.0.0.1:");
  assertStringIncludes(log, "Shutting down: 1 open connections");
});

Deno.test("deno task server starts the server; SIGTERM stops it with exit 0", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "server", "--port", "0", "--udp"],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let first = "";
  while (!first.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the task exited before listening: ${await stderr}`);
    first += value;
  }
  assertMatch(first, /^@x\/echo server listening on 127\.0\.0\.1:\d+ \(udp, echo mode/);
  child.kill("SIGTERM");
  assertEquals((await child.status).code, 0, await stderr);
  await reader.cancel();
});

Deno.test("server program: a second signal exits at once while the first still flushes", async () => {
  // The smallest budget: the server says when it stops reading with echoes it could not send.
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      ...["run", "-A", "--quiet", SERVER, "--port", "0"],
      ...["--log-level", "debug", "--max-buffered", "1"],
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const err = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  const readUntil = async (reader: typeof out, text: string) => {
    let seen = "";
    while (!seen.includes(text)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`ended before ${JSON.stringify(text)}: ${seen}`);
      seen += value;
    }
    return seen;
  };
  const port = Number((await readUntil(out, "\n")).match(/:(\d+) \(/)![1]);
  // A client that sends and never reads: the server's echoes back up and cannot be flushed.
  const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port });
  const sending = writeAll(conn, new Uint8Array(64 << 20)).catch(() => {});
  await readUntil(err, "Paused reading from");
  child.kill("SIGTERM");
  await readUntil(err, "Shutting down: 1 open connections");
  child.kill("SIGINT");
  assertEquals((await child.status).code, 130);
  conn.close();
  await sending;
  await out.cancel();
  await err.cancel();
});

Deno.test("server program: --max-connections closes one more at once and counts it", async () => {
  await using server = await new ServerProcess(["--max-connections", "1", "--api", "stream"])
    .ready();
  assertStringIncludes(server.firstLine, "; max 67108864 bytes buffered, max 1 connections)");
  const held = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.port });
  await writeAll(held, encode("held"));
  assertEquals(decode(await readExactly(held, 4)), "held");
  const over = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.port });
  const got = await readToEnd(over).catch((error) => error);
  assert(got instanceof Deno.errors.ConnectionReset || got.length === 0, String(got));
  over.close();
  held.close();
  assertEquals(await server.stop(), 0);
  assertStringIncludes(await server.stderr, "accepted: 1, refused: 1, closedIdle: 0");
});

Deno.test("server program: --max-connections holds for all --workers together", async () => {
  await using server = await new ServerProcess(["--max-connections", "2", "--workers", "2"])
    .ready();
  /** Whether a new connection is served (echoed) or closed at once; served ones stay open. */
  const open: Deno.TcpConn[] = [];
  const served = async (): Promise<boolean> => {
    const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.port });
    await writeAll(conn, encode("x")).catch(() => {});
    const got = await readExactly(conn, 1).catch(() => null);
    if (got === null) {
      conn.close();
      return false;
    }
    open.push(conn);
    return true;
  };
  try {
    // Ten connections, spread over both workers by the kernel: two served in all, not two each.
    const results: boolean[] = [];
    for (let i = 0; i < 10; i++) results.push(await served());
    assertEquals(results.filter((x) => x).length, 2, String(results));
    // A place given back is taken again.
    open.pop()!.close();
    let again = false;
    for (let i = 0; i < 50 && !again; i++) again = await served();
    assert(again, "no connection served once one had closed");
  } finally {
    for (const conn of open) conn.close();
  }
  assertEquals(await server.stop(), 0);
});

Deno.test("server program: --idle-timeout closes a quiet connection and counts it", async () => {
  await using server = await new ServerProcess(["--idle-timeout", "1"]).ready();
  assertStringIncludes(server.firstLine, "; max 67108864 bytes buffered, idle timeout 1s)");
  const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.port });
  await writeAll(conn, encode("then quiet"));
  const start = performance.now();
  assertEquals(decode(await readToEnd(conn)), "then quiet");
  assert(performance.now() - start >= 900, "closed before the idle timeout");
  conn.close();
  assertEquals(await server.stop(), 0);
  assertStringIncludes(await server.stderr, "closedIdle: 1");
});

Deno.test("server program: --mode, --prefix and --until change what comes back", async () => {
  {
    await using server = await new ServerProcess(["--mode", "prefix", "--prefix", "GOT:"]).ready();
    assertEquals(await echoOf(server.port, "x"), "GOT:x");
  }
  {
    await using server = await new ServerProcess(["--until", "END\\n"]).ready();
    assertEquals(await echoOf(server.port, "a\nb\nEND\n"), "a\nb\nEND\n");
  }
  {
    await using server = await new ServerProcess(["--mode", "once", "--api", "stream"]).ready();
    const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.port });
    await writeAll(conn, encode("only this"));
    assertEquals(decode(await readToEnd(conn)), "only this"); // closed without our EOF
    conn.close();
  }
});

Deno.test("server program: --hostname ::1 listens on IPv6", async () => {
  await using server = await new ServerProcess(["--host", "::1"]).ready();
  assertStringIncludes(server.firstLine, "listening on [::1]:");
  const conn = await Deno.connect({ hostname: "::1", port: server.port });
  await writeAll(conn, encode("v6"));
  conn.closeWrite();
  assertEquals(decode(await readToEnd(conn)), "v6");
  conn.close();
});

Deno.test("server program: bad flags print one line on stderr and exit 2", async () => {
  const cases: [string[], string][] = [
    [["--bogus"], "Cannot use --bogus: it is an unknown option"],
    [["--port", "70000"], 'Cannot use --port "70000": it must be a whole number from 0 to 65535'],
    [["--port", "abc"], 'Cannot use --port "abc"'],
    [["--api", "rest"], 'Cannot use --api "rest": it must be one of protocol, stream'],
    [["--mode", "loud"], 'Cannot use --mode "loud": it must be one of echo, once, prefix, until'],
    [["--mode", "echo", "--prefix", "x"], "Cannot use --prefix with --mode echo: they conflict"],
    [["--prefix", "x", "--until", "y"], "Cannot use --prefix with --until: they conflict"],
    [["--log-level", "loud"], 'Cannot use --log-level "loud"'],
    [["--hostname", ""], "Cannot use --hostname without a value"],
    [["stray"], "Cannot use stray: it is an unknown option"],
    [
      ["--max-connections", "0"],
      'Cannot use --max-connections "0": it must be a whole number from 1',
    ],
    [["--idle-timeout", "x"], 'Cannot use --idle-timeout "x"'],
    [["--log-format", "xml"], 'Cannot use --log-format "xml": it must be one of text, json'],
  ];
  for (const [args, message] of cases) {
    const { code, stdout, stderr } = await run(SERVER, args);
    assertEquals(code, 2, `${args.join(" ")}: ${stderr}`);
    assertEquals(stdout, "");
    assertEquals(stderr.trim().split("\n").length, 1, stderr);
    assertStringIncludes(stderr, message);
  }
});

/**
 * How to run a program without the right to bind ports below 1024: as root,
 * through setpriv(1) dropping CAP_NET_BIND_SERVICE; otherwise as we are.
 */
function unprivileged(): string[] | null {
  if (Deno.uid() !== 0) return [];
  return installed("setpriv")
    ? ["setpriv", "--bounding-set=-net_bind_service", "--inh-caps=-net_bind_service"]
    : null;
}
const dropPrivilege = unprivileged();

Deno.test({
  name: "server program: a port below 1024 without the privilege says what to try, exit 1 " +
    "(--port, --admin-port)",
  ignore: dropPrivilege === null || unprivilegedPortStart() <= 80,
  async fn() {
    const hint = "ports below 1024 need privileges; use a port of 1024 or more, or give deno " +
      "the CAP_NET_BIND_SERVICE capability";
    const cases: [string[], string][] = [
      [["--port", "80", "--transport", "tcp"], `127.0.0.1:80: permission denied: ${hint}`],
      [["--port", "80", "--transport", "udp"], `127.0.0.1:80: permission denied: ${hint}`],
      [
        ["--port", "0", "--admin-port", "80"],
        "Cannot listen for the admin endpoints on 127.0.0.1:80: permission denied: ports below " +
        "1024 need privileges; use an --admin-port of 1024 or more, or give deno the " +
        "CAP_NET_BIND_SERVICE capability",
      ],
    ];
    for (const [args, expected] of cases) {
      const [command, ...prefix] = [...dropPrivilege!, Deno.execPath()];
      const { code, stderr } = await new Deno.Command(command, {
        args: [...prefix, "run", "-A", "--quiet", SERVER, ...args],
        stdout: "null",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(stderr);
      assertEquals(code, 1, text);
      assertStringIncludes(text, expected);
      assertEquals(text.trim().split("\n").length, 1, text);
    }
  },
});

Deno.test("server program: a port in use says so and exits 1", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { code, stderr } = await run(SERVER, ["--port", String(listener.addr.port)]);
  assertEquals(code, 1);
  assertStringIncludes(stderr, `127.0.0.1:${listener.addr.port}: the address is already in use`);
  assertEquals(stderr.trim().split("\n").length, 1, stderr);
});

/** The flags issue 5 lists for the server, each of which --help must show with its default. */
const SERVER_FLAGS = [
  "--hostname",
  "--host",
  "--port",
  "--transport",
  "--udp",
  "--api",
  "--mode",
  "--prefix",
  "--until",
  "--backlog",
  "--reuse-address",
  "--no-reuse-address",
  "--reuse-port",
  "--recv-buffer",
  "--send-buffer",
  "--nodelay",
  "--no-nodelay",
  "--keepalive",
  "--keepalive-idle",
  "--keepalive-count",
  "--keepalive-interval",
  "--quickack",
  "--max-connections",
  "--idle-timeout",
  "--rate-limit",
  "--log-level",
  "--log-format",
  "--help",
  "--version",
];

/** The help's option entries: a line starting with "  -", with its indented continuation lines. */
function helpEntries(help: string): string[] {
  const entries: string[] = [];
  for (const line of help.split("\n")) {
    if (/^ {2}-/.test(line)) entries.push(line);
    else if (/^ {4,}\S/.test(line) && entries.length > 0) entries[entries.length - 1] += line;
  }
  return entries;
}

Deno.test("server program: --help lists every flag with its default; --version matches deno.json", async () => {
  const help = await run(SERVER, ["--help"]);
  assertEquals(help.code, 0);
  const entries = helpEntries(help.stdout);
  for (const flag of SERVER_FLAGS) {
    const entry = entries.find((e) => new RegExp(`(^|[ ,])${flag}([ ,]|$)`).test(e));
    assert(entry, `${flag} is not in --help`);
    // Flags that only print, or only name another flag, have no default to give.
    if (!["--help", "--version", "--udp", "--host"].includes(flag)) {
      assertMatch(entry, /default/, `${flag} has no default in --help: ${entry}`);
    }
  }
  const { version } = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const printed = await run(SERVER, ["--version"]);
  assertEquals(printed.stdout.trim(), `@x/echo ${version}`);
});

Deno.test("client program: --message prints the echo and exits 0; interactive lines until q", async () => {
  await using server = await new ServerProcess([]).ready();
  const once = await run(CLIENT, ["--port", String(server.port), "--message", "hello"]);
  assertEquals(once, { code: 0, stdout: "hello\n", stderr: "" });
  const lines = await run(CLIENT, ["--port", String(server.port)], "one\ntwo\nq\nnever\n");
  assertEquals(lines.code, 0);
  assertEquals(lines.stdout, "one\ntwo\n");
});

Deno.test("client program: with --check exits 1 when the echo differs; exits 1 when nothing listens", async () => {
  await using server = await new ServerProcess(["--prefix", "GOT:"]).ready();
  const differs = await run(CLIENT, [
    "--port",
    String(server.port),
    "--message",
    "abcdef",
    "--check",
  ]);
  assertEquals(differs.code, 1);
  assertStringIncludes(differs.stderr, "Cannot verify the echo: it differs");
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const refused = await run(CLIENT, ["--port", String(port), "--message", "x"]);
  assertEquals(refused.code, 1);
  assertStringIncludes(refused.stderr, `Cannot connect to 127.0.0.1:${port}`);
});

Deno.test("client program: a server that closes mid-session is reported, exit 1", async () => {
  await using server = await new ServerProcess(["--mode", "once"]).ready();
  const { code, stdout, stderr } = await run(CLIENT, ["--port", String(server.port)], "one\ntwo\n");
  assertEquals(code, 1);
  assertEquals(stdout, "one\n");
  assertStringIncludes(
    stderr,
    `Cannot send the rest of the input: the server 127.0.0.1:${server.port} closed the connection`,
  );
});

Deno.test("bench program: --json reports verified round trips against the server", async () => {
  await using server = await new ServerProcess(["--log-level", "warning"]).ready();
  const { code, stdout, stderr } = await run(BENCH, [
    "--port",
    String(server.port),
    "--connections",
    "4",
    "--size",
    "5000",
    "--duration",
    "1",
    "--json",
  ]);
  assertEquals(code, 0, stderr);
  const report = JSON.parse(stdout);
  assertEquals(report.errors, 0);
  assertEquals(report.connections, 4);
  assert(report.requests > 100, `only ${report.requests} requests`);
  const { min, max, percentiles } = report.latencyUs;
  assertEquals(Object.keys(percentiles), ["50", "90", "99", "99.9", "99.99"]);
  assert(min <= percentiles["50"] && percentiles["50"] <= percentiles["99"]);
  assert(percentiles["99"] <= percentiles["99.99"] && percentiles["99.99"] <= max);
});

Deno.test("bench program: a server that answers wrongly counts as an error and exits 1", async () => {
  await using server = await new ServerProcess(["--prefix", ">"]).ready();
  const { code, stdout } = await run(BENCH, [
    "--port",
    String(server.port),
    "--duration",
    "1",
    "--json",
  ]);
  assertEquals(code, 1);
  assertEquals(JSON.parse(stdout).errors, 10);
});

Deno.test("each program's --help names the command that runs it from where it was started", async () => {
  for (const program of [SERVER, CLIENT, BENCH]) {
    for (const cwd of [new URL("..", import.meta.url).pathname, "/tmp"]) {
      const help = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--quiet", program, "--help"],
        signal: AbortSignal.timeout(60_000),
        cwd,
        stdout: "piped",
      }).output();
      const usage = new TextDecoder().decode(help.stdout).split("\n")[0];
      const match = usage.match(/^Usage: deno run -A (\S+) \[options\]$/);
      if (match === null) throw new Error(`no command in ${JSON.stringify(usage)}`);
      // What it says works as written, from there.
      const version = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--quiet", match[1], "--version"],
        signal: AbortSignal.timeout(60_000),
        cwd,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assertEquals(version.code, 0, new TextDecoder().decode(version.stderr));
      assertMatch(new TextDecoder().decode(version.stdout), /^@x\/echo \d/);
    }
  }
});
