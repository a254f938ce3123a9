/**
 * `--mode info`: each connection is first answered with one JSON line of
 * what the server saw (the client, from the PROXY header where that is on;
 * the local address; host name; worker; transport; TLS), then echoes; over
 * UDP each datagram is answered with that line. Real peers: socat bound to
 * 127.0.0.7, our client over TLS, a Unix socket.
 */

import { assert, assertEquals } from "@std/assert";
import { installed, ServerProcess } from "./_programs.ts";
import { decode, dial, encode, readToEnd, writeAll } from "./_helpers.ts";
import { serveEcho } from "../src/echo/serve.ts";
import { serveUdpEcho } from "../src/echo/datagram.ts";
import { connectTcpStreams, serveTcpStreams } from "../src/streams/streams.ts";
import { echoStreamHandler } from "../src/echo/stream.ts";
import type { EchoInfo } from "../src/echo/info.ts";
import { HAVE_OPENSSL, makeCertificates } from "./_tls.ts";
import { ask, peer } from "./_udp.ts";

const haveSocat = installed("socat");

/** What socat, bound to `source`, gets back for `text` over `transport` (TCP: after half-close). */
async function socatFrom(
  source: string,
  transport: "TCP" | "UDP",
  port: number,
  text: string,
): Promise<string> {
  const child = new Deno.Command("socat", {
    args: ["-t", "1", "-", `${transport}:127.0.0.1:${port},bind=${source}`],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(encode(text));
  await writer.close();
  const { stdout } = await child.output();
  return decode(stdout);
}

/** The JSON line and what followed it. */
function split(answer: string): [EchoInfo, string] {
  const end = answer.indexOf("\n");
  assert(end > 0, `no line in ${JSON.stringify(answer)}`);
  return [JSON.parse(answer.slice(0, end)), answer.slice(end + 1)];
}

Deno.test({
  name: "--mode info: a client from 127.0.0.7 is named 127.0.0.7, over TCP then echo, and UDP",
  ignore: !haveSocat,
  async fn() {
    await using server = await new ServerProcess(["--mode", "info", "--transport", "tcp,udp"])
      .ready(2);
    const [info, rest] = split(await socatFrom("127.0.0.7", "TCP", server.port, "then echo"));
    assertEquals(info.transport, "tcp");
    assertEquals((info.client as { address: string }).address, "127.0.0.7");
    assertEquals(info.server, { address: "127.0.0.1", port: server.port });
    assertEquals(info.proxy, null);
    assertEquals(info.tls, null);
    assertEquals(info.worker, null);
    assertEquals(info.hostname, Deno.hostname());
    assertEquals(rest, "then echo");
    const [datagram, after] = split(await socatFrom("127.0.0.7", "UDP", server.port, "12345"));
    assertEquals(datagram.transport, "udp");
    assertEquals((datagram.client as { address: string }).address, "127.0.0.7");
    assertEquals(datagram.bytes, 5);
    assertEquals(after, "", "the line instead of the echo");
    assertEquals(await server.stop(), 0);
  },
});

Deno.test("--mode info with --proxy-protocol names the header's client and the proxy", async () => {
  await using server = await new ServerProcess(["--mode", "info", "--proxy-protocol"]).ready();
  const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.port });
  await writeAll(conn, encode("PROXY TCP4 203.0.113.9 127.0.0.1 5555 8888\r\nhi"));
  await conn.closeWrite();
  const [info, rest] = split(decode(await readToEnd(conn)));
  const local = conn.localAddr as Deno.NetAddr;
  conn.close();
  assertEquals(info.client, { address: "203.0.113.9", port: 5555 });
  assertEquals(info.proxy, { address: "127.0.0.1", port: local.port, version: 1 });
  assertEquals(rest, "hi");
  assertEquals(await server.stop(), 0);
});

Deno.test("--mode info on --workers 2 names the worker that answers", async () => {
  await using server = await new ServerProcess(["--mode", "info", "--workers", "2"]).ready();
  const workers = new Set<number | null>();
  for (let i = 0; i < 40; i++) {
    const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.port });
    await conn.closeWrite();
    workers.add(split(decode(await readToEnd(conn)))[0].worker);
    conn.close();
  }
  assertEquals(workers, new Set([0, 1]));
  assertEquals(await server.stop(), 0);
});

for (const api of ["protocol", "stream"] as const) {
  Deno.test({
    name: `info mode (${api} API): over TLS the line has the ALPN protocol`,
    ignore: !HAVE_OPENSSL,
    async fn() {
      const { ca, cert, key, dir } = makeCertificates();
      try {
        await using server = serveEcho({
          port: 0,
          api,
          mode: "info",
          info: { hostname: "echo-test" },
          tls: { cert, key, alpnProtocols: ["h2"] },
        });
        const client = await connectTcpStreams({
          port: server.addr.port,
          tls: { caCerts: [ca], serverName: "localhost", alpnProtocols: ["h2"] },
        });
        const line = await client.reader.readLine();
        client.writer.write(encode("after"));
        assertEquals(decode(await client.reader.readExactly(5)), "after");
        await client.writer.close();
        const info = JSON.parse(decode(line!)) as EchoInfo;
        assertEquals(info.tls, { serverName: null, alpnProtocol: "h2", version: null });
        assertEquals(info.hostname, "echo-test");
        assertEquals(info.transport, "tcp");
      } finally {
        Deno.removeSync(dir, { recursive: true });
      }
    },
  });
}

Deno.test("info mode on a Unix socket: the transport is unix", async () => {
  const path = Deno.makeTempFileSync({ suffix: ".sock" });
  Deno.removeSync(path);
  await using server = serveTcpStreams({ path }, echoStreamHandler({ mode: "info" }));
  const client = await connectTcpStreams({ path });
  const info = JSON.parse(decode((await client.reader.readLine())!)) as EchoInfo;
  await client.writer.close();
  assertEquals(info.transport, "unix");
  assertEquals(info.server, { path });
  assert(server.addr.path === path);
});

Deno.test("info mode over UDP, from code: each datagram gets the line", async () => {
  await using server = await serveUdpEcho({ port: 0, mode: "info", info: { worker: 3 } });
  await using socket = await peer();
  const answer = await ask(socket, server.addr, encode("abc"));
  const info = JSON.parse(decode(answer)) as EchoInfo;
  assertEquals(info.worker, 3);
  assertEquals(info.bytes, 3);
  assertEquals(info.client, { address: "127.0.0.1", port: socket.addr.port });
});

Deno.test("info mode over UDP never answers a short datagram with a longer line off loopback", async () => {
  // Bound to every address: a datagram to a non-loopback one must not be amplified.
  const addresses = Deno.networkInterfaces().filter((i) =>
    i.family === "IPv4" && !i.address.startsWith("127.")
  );
  if (addresses.length === 0) return; // no address but loopback here
  const address = addresses[0].address;
  await using server = await serveUdpEcho({ hostname: "0.0.0.0", port: 0, mode: "info" });
  await using socket = await peer(address);
  const to: Deno.NetAddr = { transport: "udp", hostname: address, port: server.addr.port };
  await socket.send(encode("x"), to); // 1 byte in, ~200 would come out: dropped, counted
  const long = new Uint8Array(400);
  const answer = await ask(socket, to, long);
  const info = JSON.parse(decode(answer)) as EchoInfo;
  assertEquals(info.bytes, 400);
  assertEquals(server.counters.drops.amplification, 1);
});
