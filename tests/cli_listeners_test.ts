/**
 * The server program with several listeners (`--port 7,8888`, `--transport
 * tcp,udp`) and on workers (`--workers N`): one startup line per listener,
 * every listener serving, counted and stopped with the rest.
 */

import { assert, assertEquals, assertMatch } from "@std/assert";
import { ServerProcess } from "./_programs.ts";
import { decode, echoOf, encode } from "./_helpers.ts";
import { ask, peer } from "./_udp.ts";

/** The port of a startup line. */
const portOf = (line: string) => Number(line.match(/listening on [^ ]*:(\d+) /)![1]);

/** Sends `text` to the UDP echo on `port` and returns the answer. */
async function udpEchoOf(port: number, text: string): Promise<string> {
  await using socket = await peer();
  const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
  return decode(await ask(socket, to, encode(text)));
}

/** The listening sockets of `transport` on `port`, as `ss` would list them. */
function socketsOn(transport: "tcp" | "udp", port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  const state = transport === "tcp" ? "0A" : "07";
  let count = 0;
  for (const line of Deno.readTextFileSync(`/proc/net/${transport}`).split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length > 3 && fields[1].endsWith(`:${hex}`) && fields[3] === state) count++;
  }
  return count;
}

Deno.test("server program: --port 0,0 listens on two ports, one line each", async () => {
  await using server = await new ServerProcess(["--port", "0,0"]).ready(2);
  const [first, second] = server.lines.map(portOf);
  assert(first !== second, `two ports: ${server.lines}`);
  assertEquals(await echoOf(first, "one"), "one");
  assertEquals(await echoOf(second, "two"), "two");
  assertEquals(await server.stop(), 0);
  const stderr = await server.stderr;
  assertMatch(stderr, new RegExp(`Server on 127\\.0\\.0\\.1:${first} stopped`));
  assertMatch(stderr, new RegExp(`Server on 127\\.0\\.0\\.1:${second} stopped`));
});

Deno.test("server program: --transport tcp,udp serves both on one port number", async () => {
  await using server = await new ServerProcess(["--transport", "tcp,udp"]).ready(2);
  const [tcp, udp] = server.lines;
  assertMatch(tcp, /\(tcp, /);
  assertMatch(udp, /\(udp, /);
  const port = portOf(tcp);
  assertEquals(portOf(udp), port);
  assertEquals(await echoOf(port, "over tcp"), "over tcp");
  assertEquals(await udpEchoOf(port, "over udp"), "over udp");
  assertEquals(await server.stop(), 0);
  assertMatch(await server.stderr, /UDP server on 127\.0\.0\.1:\d+ stopped: \{ received: 1/);
});

Deno.test("server program: --workers 2 runs two listeners on the port, and adds their counts up", async () => {
  await using server = await new ServerProcess(["--workers", "2", "--transport", "tcp,udp"])
    .ready(2);
  assertMatch(server.firstLine, /; 2 workers\)$/);
  const { port } = server;
  assertEquals(socketsOn("tcp", port), 2);
  assertEquals(socketsOn("udp", port), 2);
  for (let i = 0; i < 20; i++) assertEquals(await echoOf(port, `hello ${i}`), `hello ${i}`);
  assertEquals(await udpEchoOf(port, "datagram"), "datagram");
  assertEquals(await server.stop("SIGINT"), 0);
  const stderr = await server.stderr;
  const total = stderr.match(
    /All workers on tcp 127\.0\.0\.1:\d+ stopped: \{ accepted: (\d+),.*accepted by worker: 0: (\d+), 1: (\d+)/,
  );
  if (total === null) throw new Error(`no totals line in: ${stderr}`);
  assertEquals(Number(total[1]), 20);
  assertEquals(Number(total[2]) + Number(total[3]), 20);
  assertMatch(stderr, /All workers on udp 127\.0\.0\.1:\d+ stopped: \{ received: 1,/);
  // Each worker's own lines name it.
  assertMatch(stderr, /echo\.tcp w0: /);
  assertMatch(stderr, /echo\.tcp w1: /);
  assertEquals(socketsOn("tcp", port), 0);
});

Deno.test("server program: --workers with a port in use exits 1 with one line", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const server = new ServerProcess(["--workers", "2", "--port", String(taken.addr.port)]);
    const { code } = await server.child.status;
    const stderr = await server.stderr;
    await server[Symbol.asyncDispose]();
    assertEquals(code, 1);
    assertEquals(stderr.trim().split("\n").length, 1, stderr);
    assertMatch(
      stderr,
      /^echo server: Cannot listen on 127\.0\.0\.1:\d+: the address is already in use/,
    );
  } finally {
    taken.close();
  }
});
