/**
 * The server program's day-to-day operation: it never waits on its log
 * (stderr nobody reads), sums up refusals and idle closes at info once a
 * second, says what a drain waits for (and `--shutdown-timeout` bounds it),
 * and announces each listener in one line.
 */

import { assert, assertEquals, assertMatch } from "@std/assert";
import { SERVER, ServerProcess } from "./_programs.ts";
import { decode, dial, encode, outcome, readExactly, writeAll } from "./_helpers.ts";

Deno.test("server program: with stderr nobody reads, it keeps serving 10,000 connections at debug", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", SERVER, "--port", "0", "--log-level", "debug"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped", // and never read until the end
  }).spawn();
  const stdout = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let line = "";
    while (!line.includes("\n")) {
      const { value, done } = await stdout.read();
      if (done) throw new Error("the server exited before listening");
      line += value;
    }
    const port = Number(line.match(/listening on [^ ]*:(\d+) /)![1]);
    let answered = 0;
    const worker = async (first: number) => {
      for (let i = first; i < 10_000; i += 50) {
        const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port });
        await writeAll(conn, encode(`n${i}`));
        assertEquals(decode(await readExactly(conn, `n${i}`.length)), `n${i}`);
        conn.close();
        answered++;
      }
    };
    // A server that waits on its log stalls once the pipe is full: bound the wait.
    const done = await outcome(
      Promise.all(Array.from({ length: 50 }, (_, i) => worker(i))),
      60_000,
    );
    assertEquals(done, "resolved", `${answered} of 10,000 connections answered`);
    assertEquals(answered, 10_000);
    child.kill("SIGTERM");
    // Now read it: the lines it could not write were dropped, and it said so.
    const stderr = await new Response(child.stderr).text();
    assertEquals((await child.status).code, 0);
    assertMatch(
      stderr,
      /\[WRN\] echo\.log: Dropped \d+ log lines: stderr was not read fast enough/,
    );
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // Exited.
    }
    await stdout.cancel().catch(() => {});
    await child.status;
  }
});

Deno.test("server program: one line per listener, and no second one on stderr", async () => {
  await using server = await new ServerProcess(["--transport", "tcp,udp"]).ready(2);
  assertEquals(await server.stop(), 0);
  const stderr = await server.stderr;
  assert(!/Listening on/.test(stderr), stderr);
});

Deno.test("server program: refusals at the limit and idle closes are summed up at info", async () => {
  await using server = await new ServerProcess(["--max-connections", "1", "--idle-timeout", "1"])
    .ready();
  const at = { transport: "tcp" as const, hostname: "127.0.0.1", port: server.port };
  const held = await dial(at);
  await writeAll(held, encode("x"));
  await readExactly(held, 1); // it is served: the next ones are over the limit
  for (let i = 0; i < 5; i++) {
    const conn = await dial(at);
    // Closed at once by the server: the read ends (or is reset).
    await conn.read(new Uint8Array(1)).catch(() => null);
    conn.close();
  }
  // The held connection goes quiet and is closed by the idle timeout.
  assertEquals(await held.read(new Uint8Array(1)).catch(() => null), null);
  held.close();
  assertEquals(await server.stop(), 0);
  const stderr = await server.stderr;
  const refused = [...stderr.matchAll(/Refused (\d+) connections on 127\.0\.0\.1:\d+ in the last/g)]
    .reduce((sum, m) => sum + Number(m[1]), 0);
  assertEquals(refused, 5, stderr);
  assertMatch(stderr, /Closed 1 connections on 127\.0\.0\.1:\d+ in the last second: quiet for 1 s/);
  assert(!/Refused 127\.0\.0\.1/.test(stderr), "no line per refusal at info");
});

Deno.test("server program: a drain says what it waits for, and --shutdown-timeout ends it", async () => {
  await using server = await new ServerProcess(["--shutdown-timeout", "1", "--admin-port", "0"])
    .ready(2);
  const admin = server.lines[1].match(/http:\/\/([^ ]+) /)![1];
  const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.port });
  // A client that sends a lot and reads nothing: the server holds echoes it cannot send.
  const chunk = new Uint8Array(1 << 20);
  const writing = (async () => {
    try {
      for (let i = 0; i < 64; i++) await writeAll(conn, chunk);
    } catch {
      // Reset by the abort at the end of the drain.
    }
  })();
  const held = async () => {
    const text = await (await fetch(`http://${admin}/metrics`)).text();
    return Number(text.match(/^echo_buffered_bytes\{[^}]*\} (\d+)/m)?.[1] ?? 0);
  };
  for (const deadline = Date.now() + 10_000; (await held()) === 0;) {
    if (Date.now() > deadline) throw new Error("the server never held an unsent echo");
  }
  const started = Date.now();
  const code = await server.stop("SIGTERM");
  const took = Date.now() - started;
  conn.close();
  await writing;
  assertEquals(code, 0);
  assert(took < 5_000, `the drain took ${took} ms, more than the 1 s asked and some`);
  const stderr = await server.stderr;
  assertMatch(
    stderr,
    /Draining: waiting up to 1 s for 1 open connections to send the \d+ bytes they hold and close; a second signal exits at once/,
  );
  assertMatch(stderr, /Shutdown timeout: aborting 1 connections/);
});
