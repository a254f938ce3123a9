/**
 * The programs and the PROXY protocol, as a user runs them: the server's
 * `--proxy-protocol` (a hand-written v1 header followed by data in the same
 * segment gets that data echoed; a connection without a header is closed
 * unanswered), `--proxy-from`, and the client's and bench's `--send-proxy`.
 */

import { assertEquals, assertMatch } from "@std/assert";
import { BENCH, CLIENT, run, ServerProcess } from "./_programs.ts";
import { decode, dial, encode, readToEnd, writeAll } from "./_helpers.ts";

/** Writes `text` in one write, half-closes, and returns all that comes back. */
async function oneSegment(port: number, text: string): Promise<string> {
  const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, encode(text));
    await conn.closeWrite();
    return decode(await readToEnd(conn));
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionReset) return "";
    throw error;
  } finally {
    conn.close();
  }
}

Deno.test("server program: --proxy-protocol echoes what follows a v1 header, names its client, and answers nothing without one", async () => {
  await using server = await new ServerProcess(["--proxy-protocol", "--log-level", "debug"])
    .ready();
  assertMatch(server.firstLine, /PROXY protocol v1\/v2 within 3s/);
  const header = "PROXY TCP4 203.0.113.9 127.0.0.1 5555 8888\r\n";
  assertEquals(await oneSegment(server.port, header + "handwritten"), "handwritten");
  assertEquals(await oneSegment(server.port, "no header at all"), "");
  assertEquals(await server.stop(), 0);
  const stderr = await server.stderr;
  assertMatch(stderr, /Connection made with 203\.0\.113\.9:5555 through 127\.0\.0\.1:\d+/);
  assertMatch(stderr, /Closed 127\.0\.0\.1:\d+ unanswered: not a PROXY protocol header/);
  // The connection refused for its header counts there only: one accepted and served.
  assertMatch(stderr, /stopped: \{ accepted: 1,.* proxyRefused: 1, untrusted: 0\b/);
});

Deno.test("server program: --proxy-from refuses a proxy it does not name", async () => {
  await using server = await new ServerProcess(["--proxy-protocol", "--proxy-from", "10.0.0.0/8"])
    .ready();
  const header = "PROXY TCP4 203.0.113.9 127.0.0.1 5555 8888\r\n";
  assertEquals(await oneSegment(server.port, header + "data"), "");
  assertEquals(await server.stop(), 0);
  assertMatch(await server.stderr, /untrusted: 1\b/);
});

Deno.test("client and bench programs: --send-proxy v1|v2 reach a --proxy-protocol server", async () => {
  await using server = await new ServerProcess(["--proxy-protocol"]).ready();
  for (const version of ["v1", "v2"]) {
    const client = await run(CLIENT, [
      "--port",
      String(server.port),
      "--send-proxy",
      version,
      "--message",
      "through",
      "--check",
    ]);
    assertEquals(client.code, 0, client.stderr);
    assertEquals(client.stdout, "through\n");
  }
  const bench = await run(BENCH, [
    "--port",
    String(server.port),
    "--send-proxy",
    "v2",
    "--duration",
    "1",
    "--connections",
    "2",
    "--json",
  ]);
  assertEquals(bench.code, 0, bench.stderr);
  const report = JSON.parse(bench.stdout);
  assertEquals(report.errors, 0);
  assertEquals(report.wrongAnswers ?? 0, 0);
  // Without the header, the same server answers the bench nothing.
  const bare = await run(BENCH, ["--port", String(server.port), "--duration", "1"]);
  assertEquals(bare.code, 1);
  assertEquals(await server.stop(), 0);
  assertMatch(await server.stderr, /proxyRefused: [1-9]/);
});
