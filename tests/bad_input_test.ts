/**
 * Bad input, case 7 of the reliability suite: every value-taking flag of the
 * three programs given a bad value, API options given bad values, and
 * garbage (every byte value) echoed byte-exact by every echo shape.
 */

import { assert, assertEquals, assertMatch, assertThrows } from "@std/assert";
import { run } from "./_programs.ts";
import { BAD_FLAGS } from "./_bad_flags.ts";
import { assertStdStyle } from "./_error_style.ts";
import { dial, readToEnd, writeAll } from "./_helpers.ts";
import { serveEcho } from "../src/echo/serve.ts";
import { serveUdpEcho } from "../src/echo/datagram.ts";
import { connectUdpClient } from "../src/udp/request_client.ts";
import { serveTcp } from "../src/tcp/server.ts";
import { connectTcp } from "../src/tcp/client.ts";

Deno.test("every bad flag value exits 2 with one line naming the flag", async () => {
  const results = await Promise.all(BAD_FLAGS.map(([program, args]) => run(program, args)));
  const wrong: string[] = [];
  BAD_FLAGS.forEach(([program, args, flag], i) => {
    const { code, stderr } = results[i];
    const lines = stderr.trim().split("\n");
    const name = program.split("/").pop();
    if (code !== 2 || lines.length !== 1 || !stderr.includes(flag)) {
      wrong.push(`${name} ${args.join(" ")}: exit ${code}, stderr ${JSON.stringify(stderr)}`);
    }
  });
  assertEquals(wrong, []);
  // The line is "echo server: " and a message in the module's one style.
  for (const [i, { stderr }] of results.entries()) {
    const [program, args] = BAD_FLAGS[i];
    const line = stderr.trim();
    const prefix = `echo ${program.split("/").pop()!.replace(".ts", "")}: `;
    assert(line.startsWith(prefix), line);
    assertStdStyle(line.slice(prefix.length), args.join(" "));
  }
});

Deno.test("bad API options throw before any socket opens, naming option and value", async () => {
  const cases: [string, () => unknown, string][] = [
    ["port", () => serveEcho({ port: 70000 }), "port"],
    ["backlog", () => serveEcho({ port: 0, backlog: -1 }), "backlog"],
    ["highWaterMark", () => serveEcho({ port: 0, highWaterMark: -5 }), "highWaterMark"],
    ["readBufferSize", () => serveEcho({ port: 0, readBufferSize: 0 }), "readBufferSize"],
    ["maxConnections", () => serveEcho({ port: 0, maxConnections: 0 }), "maxConnections"],
    ["idleTimeout", () => serveEcho({ port: 0, idleTimeout: -1 }), "idleTimeout"],
    ["mode", () => serveEcho({ port: 0, mode: "loud" as "echo" }), "loud"],
    ["keepAlive.count", () => serveEcho({ port: 0, keepAlive: { count: 1000 } }), "count"],
    ["noDelay", () => serveEcho({ port: 0, noDelay: "yes" as unknown as boolean }), "noDelay"],
    [
      "factory",
      () => serveTcp({ port: 0 }, undefined as unknown as () => object),
      "protocolFactory",
    ],
  ];
  for (const [what, make, text] of cases) {
    const error = assertThrows(make, Error, undefined, what);
    assert(error instanceof RangeError || error instanceof TypeError, `${what}: ${error}`);
    assert(error.message.includes(text), `${what}: ${error.message}`);
    assertStdStyle(error.message, what);
  }
  // The async entry points reject the same way.
  for (
    const [what, make] of [
      ["connectTcp port", () => connectTcp({ port: -1 }, () => ({}))],
      ["serveUdpEcho rateLimit", () => serveUdpEcho({ port: 0, rateLimit: { perSecond: 0 } })],
      ["serveUdpEcho receiveBufferSize", () => serveUdpEcho({ port: 0, receiveBufferSize: -1 })],
    ] as [string, () => Promise<unknown>][]
  ) {
    const error = await make().then(() => null, (e: Error) => e);
    assert(error instanceof RangeError || error instanceof TypeError, `${what}: ${error}`);
    assertStdStyle((error as Error).message, what);
  }
});

/** Every byte value, 256 times over in shifting order, then the same reversed. */
function garbage(): Uint8Array {
  const bytes = new Uint8Array(256 * 256 * 2);
  for (let i = 0; i < 256 * 256; i++) bytes[i] = (i + (i >> 8)) & 0xff;
  for (let i = 0; i < 256 * 256; i++) bytes[256 * 256 + i] = 255 - bytes[i];
  return bytes;
}

for (const api of ["protocol", "stream"] as const) {
  Deno.test(`every byte value comes back byte-exact over TCP (${api} API)`, async () => {
    await using server = serveEcho({ port: 0, api });
    const conn = await dial(server.addr);
    const data = garbage();
    const echoed = readToEnd(conn);
    await writeAll(conn, data);
    await conn.closeWrite();
    assertEquals(await echoed, data);
    conn.close();
  });
}

Deno.test("every byte value comes back byte-exact over UDP, one datagram per value", async () => {
  await using server = await serveUdpEcho({ port: 0 });
  await using client = await connectUdpClient({ port: server.addr.port });
  for (let value = 0; value < 256; value++) {
    const datagram = new Uint8Array(value + 1).fill(value);
    assertEquals(await client.request(datagram, { retries: 3 }), datagram);
  }
  assertEquals(server.counters.sent, 256);
});

Deno.test("a prefix echo too large for UDP is not answered, and the server goes on", async () => {
  await using server = await serveUdpEcho({ port: 0, mode: "prefix", prefix: "GOT:" });
  await using client = await connectUdpClient({ port: server.addr.port });
  const error = await client.request(new Uint8Array(65507), { timeout: 200, retries: 0 })
    .then(() => null, (e: Error) => e);
  assertMatch(String(error), /TimedOut: Cannot get an answer from udp/);
  const answer = await client.request(new TextEncoder().encode("hi"), { retries: 3 });
  assertEquals(new TextDecoder().decode(answer), "GOT:hi");
});
