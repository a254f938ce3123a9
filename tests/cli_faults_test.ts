/**
 * The server program's faults on purpose (`--delay`, `--jitter`,
 * `--throttle`, `--reset-after`, `--drop`): named on the startup line,
 * measured with real clients, counted in the stop line. Bad values are in
 * `_bad_flags.ts`.
 */

import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import { ServerProcess } from "./_programs.ts";
import { assertSameBytes, randomBytes, readExactly, writeAll } from "./_helpers.ts";
import { peer } from "./_udp.ts";

const local = (port: number) => ({ hostname: "127.0.0.1", port });

Deno.test("server program: --delay 300 --jitter 50 answers no sooner than 250 ms, named and counted", async () => {
  await using server = await new ServerProcess(["--delay", "300", "--jitter", "50"]).ready();
  assertMatch(server.firstLine, /; faults: delay 300±50 ms\)$/);
  using conn = await Deno.connect(local(server.port));
  const data = randomBytes(1000, 1);
  const start = performance.now();
  await writeAll(conn, data);
  const first = new Uint8Array(1000);
  const n = (await conn.read(first))!;
  const ms = performance.now() - start;
  assert(ms >= 249, `the first byte came after ${ms.toFixed(1)} ms`);
  first.set(await readExactly(conn, 1000 - n), n);
  assertSameBytes(first, data, "the echo");
  conn.close();
  assertEquals(await server.stop(), 0);
  assertMatch(await server.stderr, /stopped: .*faults: \{ delayed: 1, throttled: 0, resets: 0 \}/);
});

Deno.test("server program: --delay 300 measured from the write to the first byte, on --backend deno with the stream API", async () => {
  await using server = await new ServerProcess([
    "--delay",
    "300",
    "--backend",
    "deno",
    "--api",
    "stream",
  ])
    .ready();
  using conn = await Deno.connect(local(server.port));
  const start = performance.now();
  await writeAll(conn, new TextEncoder().encode("hello\n"));
  await conn.read(new Uint8Array(6));
  const ms = performance.now() - start;
  assert(ms >= 299, `the first byte came after ${ms.toFixed(1)} ms`);
});

Deno.test("server program: --reset-after 4096 on --workers 2: the client sees ECONNRESET after the echo, the totals count it", async () => {
  await using server = await new ServerProcess(["--reset-after", "4096", "--workers", "2"]).ready();
  assertMatch(server.firstLine, /; faults: reset after 4096 B; 2 workers\)$/);
  using conn = await Deno.connect(local(server.port));
  const data = randomBytes(5000, 2);
  await writeAll(conn, data);
  assertSameBytes(await readExactly(conn, 4096), data.subarray(0, 4096), "the echo");
  await assertRejects(() => conn.read(new Uint8Array(10)), Deno.errors.ConnectionReset);
  assertEquals(await server.stop(), 0);
  assertMatch(await server.stderr, /All workers on tcp .* stopped: .*resets: 1 \}/);
});

Deno.test("server program: SIGINT sends what --delay holds on --workers 2, then closes and exits 0", async () => {
  await using server = await new ServerProcess(["--delay", "500", "--workers", "2"]).ready();
  using conn = await Deno.connect(local(server.port));
  await writeAll(conn, new TextEncoder().encode("hello"));
  // In the server's socket when the stop comes: read then, and held for its delay.
  const code = server.stop("SIGINT");
  assertEquals(new TextDecoder().decode(await readExactly(conn, 5)), "hello");
  assertEquals(await conn.read(new Uint8Array(1)), null);
  assertEquals(await code, 0);
});

Deno.test("server program: --throttle 2000 sends 3000 bytes in no less than 1.3 s", async () => {
  await using server = await new ServerProcess(["--throttle", "2000"]).ready();
  assertMatch(server.firstLine, /; faults: throttle 2000 B\/s\)$/);
  using conn = await Deno.connect(local(server.port));
  const data = randomBytes(3000, 3);
  const start = performance.now();
  const reading = readExactly(conn, data.length);
  await writeAll(conn, data);
  assertSameBytes(await reading, data, "the echo");
  const ms = performance.now() - start;
  assert(ms >= 1300, `3000 bytes took ${ms.toFixed(0)} ms`);
});

Deno.test("server program: --udp --drop 50 answers about half of 400 datagrams, counted as injected", async () => {
  await using server = await new ServerProcess(["--udp", "--drop", "50"]).ready();
  assertMatch(server.firstLine, /; faults: drop 50%\)$/);
  const socket = await peer();
  const to: Deno.NetAddr = { transport: "udp", ...local(server.port) };
  let answered = 0;
  const receiving = (async () => {
    while ((await socket.receive()) !== null) answered++;
  })();
  for (let i = 0; i < 400; i++) {
    await socket.send(new TextEncoder().encode(`d${i}`), to);
    // Paced, so that a busy machine loses few in a full socket buffer (the counts allow for it).
    if (i % 20 === 19) await new Promise((resolve) => setTimeout(resolve, 5));
  }
  // The answers come within milliseconds; the program's stop line says how many it sent.
  await new Promise((resolve) => setTimeout(resolve, 500));
  assertEquals(await server.stop(), 0);
  socket.close();
  await receiving;
  const line = (await server.stderr).match(/UDP server on .* stopped: (.*)/)![1];
  const count = (name: string) => Number(line.match(new RegExp(`${name}: (\\d+)`))![1]);
  const received = count("received");
  assert(received >= 300, `the server got ${received} of 400`);
  assertEquals(count("sent") + count("injected"), received);
  assert(answered <= count("sent"));
  const share = count("sent") / received;
  assert(share >= 0.3 && share <= 0.7, `${count("sent")} of ${received} answered`);
});
