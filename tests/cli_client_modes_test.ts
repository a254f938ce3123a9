/**
 * The client program against every mode of our own server program (issue 19,
 * item 9): it prints what the server answers, however long, compares it with
 * what it sent only under --check, and loses nothing in interactive mode.
 */

import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { CLIENT, run, ServerProcess } from "./_programs.ts";
import { openDatagramSocket } from "../src/udp/socket.ts";

/** The server program with `args`, logging warnings and errors only. */
function server(...args: string[]): Promise<ServerProcess> {
  return new ServerProcess([...args, "--log-level", "warning"]).ready();
}

Deno.test("client program: --message against --mode prefix prints the whole answer, exit 0", async () => {
  await using prefix = await server("--mode", "prefix");
  const result = await run(CLIENT, ["--port", String(prefix.port), "--message", "hello"]);
  assertEquals(result, { code: 0, stdout: "GOT:hello\n", stderr: "" });
});

Deno.test("client program: --message against --mode until prints everything sent back, exit 0", async () => {
  await using until = await server("--mode", "until");
  // The default terminator, "quit\n": the answer ends in a newline, so none is added.
  const whole = await run(CLIENT, ["--port", String(until.port), "--message", "hello\nquit\n"]);
  assertEquals(whole, { code: 0, stdout: "hello\nquit\n", stderr: "" });
  // What follows the terminator is not sent back: the answer is shorter than the message.
  const shorter = await run(CLIENT, [
    "--port",
    String(until.port),
    "--message",
    "hello\nquit\nand more",
  ]);
  assertEquals(shorter, { code: 0, stdout: "hello\nquit\n", stderr: "" });
});

Deno.test("client program: --check exits 0 for a true echo, 1 naming the difference for prefix mode", async () => {
  await using echo = await server();
  const same = await run(CLIENT, ["--port", String(echo.port), "--message", "hello", "--check"]);
  assertEquals(same, { code: 0, stdout: "hello\n", stderr: "" });
  await using prefix = await server("--mode", "prefix");
  const differs = await run(CLIENT, [
    "--port",
    String(prefix.port),
    "--message",
    "hello",
    "--check",
  ]);
  assertEquals(differs.code, 1);
  assertEquals(differs.stdout, "GOT:hello\n");
  assertEquals(
    differs.stderr,
    'echo client: Cannot verify the echo: it differs from what was sent at byte 0 (sent "h", ' +
      'got "G"; 9 bytes came for 5 sent)\n',
  );
});

Deno.test("client program: interactive against --mode prefix prints every answer, nothing dropped", async () => {
  await using prefix = await server("--mode", "prefix");
  const { code, stdout, stderr } = await run(CLIENT, ["--port", String(prefix.port)], "one\ntwo\n");
  assertEquals([code, stderr], [0, ""]);
  // Each line's answer is waited for before the next goes out, so each is one read of the
  // server's; should two lines still share a read, "GOT:" comes once, and no byte is lost.
  assert(stdout.startsWith("GOT:one\n"), stdout);
  assertEquals(stdout.replaceAll("GOT:", ""), "one\ntwo\n");
});

Deno.test("client program: interactive, at end of input, prints the answer still to come", async () => {
  // Until mode answers when the terminator comes or the peer stops sending: the answer to
  // "hello\n" comes only after the client half-closes at the end of its input.
  await using until = await server("--mode", "until");
  const result = await run(CLIENT, ["--port", String(until.port)], "hello\n");
  assertEquals(result, { code: 0, stdout: "hello\n", stderr: "" });
});

Deno.test("client program: --expect stops after that many bytes, exit 0; fewer is exit 1", async () => {
  await using echo = await server();
  const five = await run(CLIENT, [
    "--port",
    String(echo.port),
    "--message",
    "hello world",
    "--expect",
    "5",
  ]);
  assertEquals(five, { code: 0, stdout: "hello\n", stderr: "" });
  await using once = await server("--mode", "once");
  const short = await run(CLIENT, [
    "--port",
    String(once.port),
    "--message",
    "hi",
    "--expect",
    "10",
  ]);
  assertEquals(short.code, 1);
  assertEquals(short.stdout, "hi\n");
  assertEquals(
    short.stderr,
    `echo client: Cannot read 10 bytes: only 2 came before the server 127.0.0.1:${once.port} ` +
      "closed the connection\n",
  );
});

Deno.test("client program: --expect reads on past a pause longer than --quiet-ms", async () => {
  // A slow server: half of the answer, then the rest once the client has waited 500 ms,
  // more than the 200 ms quiet interval that ends an answer without --expect.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    using conn = await listener.accept();
    const buffer = new Uint8Array(16);
    await conn.read(buffer);
    await conn.write(new TextEncoder().encode("hel"));
    await new Promise((resolve) => setTimeout(resolve, 500));
    await conn.write(new TextEncoder().encode("lo"));
    await conn.read(buffer); // until the client goes
  })();
  const result = await run(CLIENT, [
    "--port",
    String(listener.addr.port),
    "--message",
    "hello",
    "--expect",
    "5",
  ]);
  listener.close(); // a client that never connected leaves accept waiting: it ends it
  const served = await serving.then(() => "served", (error: Error) => error.name);
  assertEquals(result, { code: 0, stdout: "hello\n", stderr: "" });
  assertEquals(served, "served");
});

Deno.test("client program: --check, --expect and --quiet-ms take only sensible values, exit 2", async () => {
  for (
    const [args, message] of [
      [["--check"], "Cannot use --check without --message: it is about the answer to one message"],
      [["--expect", "5"], "Cannot use --expect without --message"],
      [["--message", "x", "--expect", "0"], 'Cannot use --expect "0": it must be a whole number'],
      [["--quiet-ms", "soon"], 'Cannot use --quiet-ms "soon": it must be a whole number'],
      [
        ["--message", "x", "--expect", "5", "--quiet-ms", "10"],
        "Cannot use --quiet-ms with --expect",
      ],
    ] as [string[], string][]
  ) {
    const result = await run(CLIENT, ["--port", "9", ...args]);
    assertEquals([result.code, result.stdout], [2, ""], args.join(" "));
    assertStringIncludes(result.stderr, message);
  }
});

Deno.test("client program over UDP: nothing listening is said at once, exit 1, not after --timeout", async () => {
  // A UDP port just freed: loopback answers a datagram to it with ICMP port unreachable,
  // which the client's connected socket reports as ECONNREFUSED.
  const socket = await openDatagramSocket({ hostname: "127.0.0.1", port: 0 });
  const port = socket.addr.port;
  socket.close();
  await socket.closed;
  const started = performance.now();
  const result = await run(CLIENT, [
    "--udp",
    "--port",
    String(port),
    "--message",
    "x",
    "--timeout",
    "30",
  ]);
  const seconds = (performance.now() - started) / 1000;
  assertEquals(result, {
    code: 1,
    stdout: "",
    stderr: `echo client: Cannot reach udp 127.0.0.1:${port}: nothing is listening ` +
      "(connection refused)\n",
  });
  assert(seconds < 5, `it took ${seconds.toFixed(1)} s of the 30 s timeout`);
});
