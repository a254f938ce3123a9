/**
 * The bench and client programs beyond the basics in cli_test.ts: UDP load,
 * load against socat, the progress line on a terminal, the table report, the
 * client's timeout, and each program's --help.
 */

import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { BENCH, CLIENT, installed, run, ServerProcess } from "./_programs.ts";

const missing = (command: string) =>
  !installed(command) && (console.warn(`${command} missing: skipped`), true);

/** A port nothing listens on right now, for a program we start ourselves. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** Starts `socat` as a TCP echo server on a free port; resolves once it says it listens. */
async function socatEcho(): Promise<{ port: number; child: Deno.ChildProcess }> {
  const port = freePort();
  const child = new Deno.Command("socat", {
    args: ["-d", "-d", `TCP-LISTEN:${port},bind=127.0.0.1,fork,reuseaddr`, "PIPE"],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // socat -d -d logs each connection too: keep reading its stderr so it never blocks or breaks.
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let said = "";
  while (!said.includes("listening on")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`socat did not listen: ${said}`);
    said += value;
  }
  (async () => {
    while (!(await reader.read()).done);
  })();
  return { port, child };
}

Deno.test("bench program --udp: verified datagram round trips against the UDP server", async () => {
  await using server = await new ServerProcess(["--udp", "--log-level", "warning"]).ready();
  const { code, stdout, stderr } = await run(BENCH, [
    "--udp",
    "--port",
    String(server.port),
    "--connections",
    "3",
    "--size",
    "512",
    "--duration",
    "1",
    "--json",
  ]);
  assertEquals(code, 0, stderr);
  const report = JSON.parse(stdout);
  assertEquals([report.transport, report.connections, report.size], ["udp", 3, 512]);
  assertEquals(report.errors, 0);
  assert(report.requests > 100, `only ${report.requests} requests`);
  assert(report.udp.lost < report.requests / 100, `${report.udp.lost} datagrams lost`);
  assertEquals(report.udp.sent, report.requests + report.udp.lost + report.unfinished);
});

Deno.test("bench program --udp: wrong echoes are errors, exit 1", async () => {
  await using server = await new ServerProcess(["--udp", "--prefix", ">"]).ready();
  const { code, stdout, stderr } = await run(BENCH, [
    "--transport",
    "udp",
    "--port",
    String(server.port),
    "--connections",
    "1",
    "--size",
    "4", // the answer, one byte longer, is wrong for its length
    "--duration",
    "1",
    "--json",
  ]);
  assertEquals(code, 1);
  const report = JSON.parse(stdout);
  // Each answer differs; it ends its datagram's wait, which is then not lost.
  assert(report.wrongAnswers > 0 && report.requests === 0, stdout);
  assertEquals(report.udp.lost, 0);
  assertStringIncludes(stderr, "echo bench: no round trip completed");
  assertStringIncludes(stderr, "Cannot verify the echo: a datagram differs from every one sent");
});

Deno.test({
  name: "bench program: against socat it gives the same report, as a table",
  ignore: missing("socat"),
  async fn() {
    const socat = await socatEcho();
    try {
      const { code, stdout, stderr } = await run(BENCH, [
        "--port",
        String(socat.port),
        "--connections",
        "2",
        "--size",
        "100",
        "--duration",
        "1",
      ]);
      assertEquals(code, 0, stderr);
      assertMatch(
        stdout,
        new RegExp(
          "^transport     tcp\\nconnections   2\\nmessage size  100 bytes\\nduration      [\\d.]+ s\\n" +
            "requests      \\d+( \\(and \\d unfinished at the end\\))?\\nrequests/s    \\d+\\nMiB/s         [\\d.]+\\n" +
            "latency µs    min \\d+  p50 \\d+  p90 \\d+  p99 \\d+  p99\\.9 \\d+  p99\\.99 \\d+  max \\d+  " +
            "mean \\d+\\n" +
            "errors        0\\n$",
        ),
      );
      assertEquals(stderr, "", "no progress line when stderr is not a terminal");
    } finally {
      socat.child.kill();
      await socat.child.status;
    }
  },
});

Deno.test({
  name: "bench program: on a terminal, a progress line is rewritten each second",
  ignore: missing("script"),
  async fn() {
    await using server = await new ServerProcess(["--log-level", "warning"]).ready();
    // script(1) gives the program a terminal and copies what it prints.
    const command = `${Deno.execPath()} run -A --quiet ${BENCH} --port ${server.port} ` +
      `--connections 2 --duration 2`;
    const { code, stdout } = await new Deno.Command("script", {
      args: ["-qec", command, "/dev/null"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(stdout);
    assertEquals(code, 0, text);
    const clear = "\r\x1b[2K"; // carriage return, then erase the line
    assertMatch(
      text,
      new RegExp(`${clear.replace("[", "\\[")}1 s: \\d+ requests, \\d+ req/s, 0 errors`),
    );
    assertStringIncludes(text, `${clear}transport     tcp`); // the line is cleared before the report
  },
});

Deno.test("bench program: bad flags exit 2", async () => {
  for (
    const [args, message] of [
      [
        ["--udp", "--size", "65508"],
        'Cannot use --size "65508": it must be a whole number from 1 to 65507',
      ],
      [["--transport", "sctp"], 'Cannot use --transport "sctp": it must be one of tcp, udp'],
      [["--udp", "--transport", "tcp"], "Cannot use --udp with --transport tcp: they conflict"],
      [["--connections", "0"], 'Cannot use --connections "0"'],
      [["--duration", "x"], 'Cannot use --duration "x"'],
      [
        ["--udp=no"],
        "Cannot use --udp=no: --udp is a switch, whose value can only be true or false; " +
        "write --udp to turn it on, or leave it out",
      ],
    ] as [string[], string][]
  ) {
    const result = await run(BENCH, ["--port", "9", ...args]);
    assertEquals(result.code, 2, args.join(" "));
    assertStringIncludes(result.stderr, message);
  }
});

Deno.test("bench and client programs: an empty --hgrm, --unix or --hostname names what it needs", async () => {
  for (
    const [program, flag, value] of [
      [BENCH, "--hgrm", "FILE"],
      [BENCH, "--unix", "PATH"],
      [BENCH, "--hostname", "ADDR"],
      [CLIENT, "--unix", "PATH"],
      [CLIENT, "--hostname", "ADDR"],
    ]
  ) {
    const { code, stderr } = await run(program, [flag, ""]);
    assertEquals(code, 2, stderr);
    assertStringIncludes(
      stderr,
      `Cannot use ${flag} without a value: it needs one, such as ${flag} ${value}\n`,
    );
  }
});

Deno.test("client program: --timeout ends the wait for a server that never answers, exit 1", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept(); // held open, never answering
  const { code, stdout, stderr } = await run(CLIENT, [
    "--port",
    String(listener.addr.port),
    "--message",
    "anyone?",
    "--timeout",
    "1",
  ]);
  (await accepted).close();
  assertEquals(code, 1);
  assertEquals(stdout, "");
  assertStringIncludes(stderr, "no complete echo within 1 s");
});

Deno.test("client and bench programs: --help lists every flag with its default", async () => {
  const client = await run(CLIENT, ["--help"]);
  assertEquals(client.code, 0);
  for (
    const text of [
      "--hostname, --host ADDR",
      "(default 127.0.0.1)",
      "--port N",
      "(default 8888)",
      "--transport tcp|udp",
      "--udp",
      "--message TEXT",
      "--timeout S",
      "(default 5)",
      "--retries N",
      "(default 2)",
      "--version",
      "--help",
    ]
  ) assertStringIncludes(client.stdout, text);
  const bench = await run(BENCH, ["-h"]);
  assertEquals(bench.code, 0);
  for (
    const text of [
      "--hostname, --host ADDR",
      "--port N",
      "--transport tcp|udp",
      "--udp",
      "--connections N           concurrent connections (default 10)",
      "--size BYTES              message size (default 1000",
      "--duration S              seconds to run, once connected (default 5)",
      "--json",
      "--version",
    ]
  ) assertStringIncludes(bench.stdout, text);
});

Deno.test("client and bench programs: --hostname (and --host) reach a server on IPv6", async () => {
  await using server = await new ServerProcess(["--host", "::1", "--log-level", "warning"])
    .ready();
  const client = await run(CLIENT, [
    "--hostname",
    "::1",
    "--port",
    String(server.port),
    "--message",
    "six",
  ]);
  assertEquals(client, { code: 0, stdout: "six\n", stderr: "" });
  const bench = await run(BENCH, [
    "--host",
    "::1",
    "--port",
    String(server.port),
    "--connections",
    "1",
    "--duration",
    "1",
    "--json",
  ]);
  assertEquals(bench.code, 0, bench.stderr);
  assert(JSON.parse(bench.stdout).requests > 0);
});
