import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { decode, dial, echoOf, encode, writeAll } from "./_helpers.ts";
import { installed, run, SERVER, ServerProcess } from "./_programs.ts";
import type { SocketOptionValues } from "../src/tcp/mod.ts";

const linux = Deno.build.os === "linux";
const hasSs = installed("ss");

/** `ss` output lines about sockets whose local port is `port`. */
function ss(flags: string, port: number): string {
  const { stdout } = new Deno.Command("ss", {
    args: [flags, `sport = :${port}`],
    stdout: "piped",
  }).outputSync();
  return decode(stdout);
}

/** The `values` of each per-connection socket-options record in a JSON-lines log. */
function connectionOptions(log: string): SocketOptionValues[] {
  return log.split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line))
    .filter((record) => record.logger === "echo.tcp" && record.properties?.values)
    .map((record) => record.properties.values);
}

Deno.test({
  name: "server program: keep-alive, buffers, no-delay and backlog show on accepted connections",
  ignore: !linux,
  async fn() {
    await using server = await new ServerProcess([
      "--keepalive-idle",
      "1800",
      "--keepalive-count",
      "5",
      "--keepalive-interval",
      "15",
      "--recv-buffer",
      "65536",
      "--send-buffer",
      "65536",
      "--nodelay",
      "--backlog",
      "100",
      "--log-level",
      "debug",
      "--log-format",
      "json",
    ]).ready();
    // The startup line reads them back from the listening socket (Linux doubles buffers).
    assertStringIncludes(
      server.firstLine,
      "backlog 100, nodelay, keepalive idle 1800s interval 15s count 5, " +
        "rcvbuf 131072, sndbuf 131072, reuseaddr",
    );
    const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.port });
    await writeAll(conn, encode("ping"));
    const got = new Uint8Array(4);
    assertEquals(await conn.read(got), 4); // accepted and served: the socket exists now
    if (hasSs) {
      const established = ss("-tonmH", server.port);
      assertMatch(established, /timer:\(keepalive,(29min|30min),0\)/);
      assertMatch(established, /skmem:\(r\d+,rb131072,t\d+,tb131072,/);
      assertMatch(ss("-ltnH", server.port), /LISTEN\s+0\s+100\s/);
    }
    conn.close();
    assertEquals(await server.stop(), 0);
    // The server read the accepted connection's options back with getsockopt and logged them.
    const [values] = connectionOptions(await server.stderr);
    assert(values, "no per-connection socket-options record in the debug log");
    assertEquals(
      {
        noDelay: values.noDelay,
        keepAlive: values.keepAlive,
        idle: values.keepAliveIdle,
        interval: values.keepAliveInterval,
        count: values.keepAliveCount,
        rcvbuf: values.receiveBufferSize,
        sndbuf: values.sendBufferSize,
      },
      {
        noDelay: true,
        keepAlive: true,
        idle: 1800,
        interval: 15,
        count: 5,
        rcvbuf: 131072,
        sndbuf: 131072,
      },
    );
  },
});

Deno.test({
  name: "server program: --no-nodelay, --no-reuse-address, --keepalive and --quickack",
  ignore: !linux,
  async fn() {
    await using server = await new ServerProcess([
      "--no-nodelay",
      "--no-reuse-address",
      "--keepalive",
      "--quickack",
      "--log-level",
      "debug",
      "--log-format",
      "json",
    ]).ready();
    assertMatch(
      server.firstLine,
      /no nodelay, keepalive idle \d+s interval \d+s count \d+, rcvbuf \d+, sndbuf \d+, no reuseaddr, quickack; max \d+ bytes buffered\)/,
    );
    assertEquals(await echoOf(server.port, "still echoes"), "still echoes");
    assertEquals(await server.stop(), 0);
    const [values] = connectionOptions(await server.stderr);
    assertEquals([values.noDelay, values.keepAlive, values.reuseAddress], [false, true, false]);
  },
});

for (
  const [backend, flags] of [["epoll", ["-A"]], ["deno", ["-A", "--unstable-net"]]] as const
) {
  Deno.test({
    name: `server program (${backend}): two --reuse-port servers share a port; without it the ` +
      "second fails",
    ignore: !linux,
    async fn() {
      const args = ["--reuse-port", "--backend", backend];
      await using first = await new ServerProcess(args, [...flags]).ready();
      assertStringIncludes(first.firstLine, "reuseport");
      const port = String(first.port);
      await using second = await new ServerProcess([...args, "--port", port], [...flags]).ready();
      assertEquals(second.port, first.port);
      // Both are listening: the kernel spreads connections, every one is echoed.
      for (let i = 0; i < 8; i++) assertEquals(await echoOf(first.port, `c${i}`), `c${i}`);
      if (hasSs) assertEquals(ss("-ltnH", first.port).trim().split("\n").length, 2);

      const third = await run(SERVER, ["--port", port, "--backend", backend], "", [...flags]);
      assertEquals(third.code, 1);
      assertMatch(third.stderr.trim(), /^echo server: .*already in use.*choose another port/);
      assertEquals(third.stderr.trim().split("\n").length, 1);
    },
  });
}

/** `path` as the programs show it: relative to the working directory when inside it. */
const asSeenFromHere = (path: string) =>
  path.startsWith(Deno.cwd() + "/") ? path.slice(Deno.cwd().length + 1) : path;

Deno.test("server program: --reuse-port on --backend deno without --unstable-net names the flag to add", async () => {
  const { code, stdout, stderr } = await run(SERVER, [
    "--port",
    "0",
    "--reuse-port",
    "--backend",
    "deno",
  ]);
  assertEquals(code, 2);
  assertEquals(stdout, "");
  assertEquals(
    stderr.trim(),
    "echo server: Cannot use --reuse-port on --backend deno: it needs Deno's --unstable-net " +
      `flag; run deno run -A --unstable-net ${asSeenFromHere(SERVER)} --reuse-port ... ` +
      "(the epoll backend needs no flag for it)",
  );
});

for (
  const [args, expected] of [
    [["--backlog", "0"], 'Cannot use --backlog "0": it must be a whole number from 1 to 65535'],
    [
      ["--backlog", "many"],
      'Cannot use --backlog "many": it must be a whole number from 1 to 65535',
    ],
    [["--recv-buffer", "-1"], "Cannot use --recv-buffer -1: negative numbers are not allowed"],
    [
      ["--recv-buffer=-1"],
      'Cannot use --recv-buffer "-1": it must be a whole number from 1 to 1073741824',
    ],
    [["--send-buffer", "2000000000"], "Cannot use --send-buffer"],
    [
      ["--keepalive-idle", "0"],
      'Cannot use --keepalive-idle "0": it must be a whole number from 1 to 32767',
    ],
    [["--keepalive-interval", "40000"], "Cannot use --keepalive-interval"],
    [
      ["--keepalive-count", "128"],
      'Cannot use --keepalive-count "128": it must be a whole number from 1 to 127',
    ],
  ] as const
) {
  Deno.test(`server program: ${args.join(" ")} is refused with exit 2`, async () => {
    const { code, stdout, stderr } = await run(SERVER, ["--port", "0", ...args]);
    assertEquals(code, 2);
    assertEquals(stdout, "");
    assertEquals(stderr.trim().split("\n").length, 1, stderr);
    assertStringIncludes(stderr, expected);
  });
}

Deno.test({
  name: "server program without --allow-ffi: one warning names what was not set, the rest works",
  ignore: !linux,
  async fn() {
    await using server = await new ServerProcess(
      ["--recv-buffer", "65536", "--keepalive-idle", "60", "--quickack"],
      ["--allow-net"],
    ).ready();
    assertStringIncludes(server.firstLine, "socket options not read back");
    assertStringIncludes(server.firstLine, "--allow-ffi");
    const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.port });
    await writeAll(conn, encode("ping"));
    assertEquals(await conn.read(new Uint8Array(4)), 4);
    // SO_KEEPALIVE was still set, through Deno, with the system's timing (not our 60 s).
    if (hasSs) {
      assertMatch(ss("-tonmH", server.port), /timer:\(keepalive,(1[0-9]{2}|[2-9][0-9])min,0\)/);
    }
    conn.close();
    assertEquals(await echoOf(server.port, "twice"), "twice");
    assertEquals(await server.stop(), 0);
    const warnings = (await server.stderr).split("\n").filter((l) => l.includes("[WRN]"));
    assertEquals(warnings.length, 1, warnings.join("\n"));
    assertStringIncludes(
      warnings[0],
      "Socket options not set on tcp 127.0.0.1:",
    );
    assertStringIncludes(
      warnings[0],
      "receiveBufferSize=65536, keepAlive.idle=60, quickAck=true " +
        "(FFI is not allowed; run with --allow-ffi (or -A); " +
        "TCP_NODELAY and SO_KEEPALIVE are set through Deno instead)",
    );
  },
});

Deno.test({
  name: "server program with --allow-ffi but no --allow-read: the deno backend's warning says " +
    "which flag to add; epoll needs none",
  ignore: !linux,
  async fn() {
    await using server = await new ServerProcess(
      ["--recv-buffer", "65536", "--log-level", "debug", "--backend", "deno"],
      ["--allow-net", "--allow-ffi"],
    ).ready();
    assertEquals(await echoOf(server.port, "served anyway"), "served anyway");
    assertEquals(await server.stop(), 0);
    const warnings = (await server.stderr).split("\n").filter((l) => l.includes("[WRN]"));
    assertEquals(warnings.length, 1, warnings.join("\n"));
    assertStringIncludes(warnings[0], "receiveBufferSize=65536 (Requires read access to");
    assertStringIncludes(warnings[0], "--allow-read");
    // The epoll backend opened its socket itself: nothing to look up, so nothing to read.
    await using epoll = await new ServerProcess(
      ["--recv-buffer", "65536", "--log-level", "debug"],
      ["--allow-net", "--allow-ffi"],
    ).ready();
    assertStringIncludes(epoll.firstLine, "epoll backend");
    assertStringIncludes(epoll.firstLine, "rcvbuf 131072");
    assertEquals(await epoll.stop(), 0);
    assertEquals((await epoll.stderr).split("\n").filter((l) => l.includes("[WRN]")), []);
  },
});
