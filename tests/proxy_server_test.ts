/**
 * A server that takes the PROXY protocol, on both backends and both APIs:
 * the client is the one the header names, bytes after the header are data,
 * and a connection without a valid header, with a late one or from an
 * untrusted source is closed unanswered, counted, and never reaches the
 * protocol. What a slow header makes the server hold is charged against
 * its buffer budget.
 */

import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { serveTcp, type TcpBackend, type TcpServer } from "../src/tcp/server.ts";
import { serveTcpStreams } from "../src/streams/streams.ts";
import { connectTcp } from "../src/tcp/client.ts";
import type { Protocol, Transport } from "../src/core/protocol.ts";
import { encodeProxyHeader } from "../src/proxy/encode.ts";
import type { ProxyHeader } from "../src/proxy/header.ts";
import { PP2_TYPE_ALPN, PP2_TYPE_AUTHORITY } from "../src/proxy/header.ts";
import {
  concat,
  decode,
  dial,
  encode,
  outcome,
  readExactly,
  readToEnd,
  waitFor,
  writeAll,
} from "./_helpers.ts";

const BACKENDS: TcpBackend[] = ["epoll", "deno"];
const CLIENT: Deno.NetAddr = { transport: "tcp", hostname: "192.0.2.7", port: 40001 };
const CLIENT6: Deno.NetAddr = { transport: "tcp", hostname: "2001:db8::7", port: 40002 };

/** What an echo protocol saw of its connection. */
interface Seen {
  made: number;
  lost: number;
  peername?: Deno.NetAddr;
  proxyPeername?: Deno.NetAddr | null;
  proxyHeader?: ProxyHeader | null;
}

function echoServer(backend: TcpBackend, proxyProtocol: unknown, seen: Seen[]): TcpServer {
  return serveTcp(
    { port: 0, backend, proxyProtocol: proxyProtocol as boolean },
    (): Protocol => {
      const record: Seen = { made: 0, lost: 0 };
      seen.push(record);
      let transport: Transport;
      return {
        connectionMade(t) {
          transport = t;
          record.made++;
          record.peername = t.getExtraInfo("peername") as Deno.NetAddr;
          record.proxyPeername = t.getExtraInfo("proxyPeername") as Deno.NetAddr | null;
          record.proxyHeader = t.getExtraInfo("proxyHeader");
        },
        dataReceived: (data) => transport.write(data),
        connectionLost: () => void record.lost++,
      };
    },
  );
}

/** Bytes the server's side of the connection from `clientPort` has not read yet (ss). */
function unreadByServer(clientPort: number): number {
  const { stdout } = new Deno.Command("ss", {
    args: ["-tnH", "state", "established", `( dport = :${clientPort} )`],
    stdout: "piped",
  }).outputSync();
  const line = decode(stdout).trim().split("\n")[0] ?? "";
  return line === "" ? 0 : Number(line.trim().split(/\s+/)[0]);
}

/**
 * Sends `parts` one write each (a pause between them), half-closes, and
 * returns the answer: nothing, when the server closed the connection first.
 */
async function exchange(port: number, parts: Uint8Array[]): Promise<Uint8Array> {
  const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port });
  try {
    const clientPort = (conn.localAddr as Deno.NetAddr).port;
    for (const part of parts) {
      await writeAll(conn, part);
      // Each part is a read of its own: the next goes once the server has taken this one in.
      await waitFor(() => unreadByServer(clientPort) === 0, "the server to read the part");
    }
    await conn.closeWrite();
    return await readToEnd(conn);
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BrokenPipe) {
      return new Uint8Array(0);
    }
    throw error;
  } finally {
    conn.close();
  }
}

for (const backend of BACKENDS) {
  Deno.test(`proxy protocol (${backend}): a v1 header and data in one segment: the data is echoed, the client is the header's`, async () => {
    const seen: Seen[] = [];
    await using server = echoServer(backend, true, seen);
    const header = encode("PROXY TCP4 192.0.2.7 198.51.100.1 40001 8888\r\n");
    const answer = await exchange(server.addr.port, [concat([header, encode("hello")])]);
    assertEquals(decode(answer), "hello");
    await waitFor(() => seen[0]?.lost === 1, "the connection to end");
    assertEquals(seen[0].made, 1);
    assertEquals(seen[0].peername, CLIENT);
    assertEquals(seen[0].proxyPeername?.hostname, "127.0.0.1");
    assertEquals(seen[0].proxyHeader?.version, 1);
    assertEquals(seen[0].proxyHeader?.destination, {
      transport: "tcp",
      hostname: "198.51.100.1",
      port: 8888,
    });
    assertEquals(server.counters.proxyRefused, 0);
    assertEquals(server.counters.accepted, 1);
  });

  Deno.test(`proxy protocol (${backend}): a v2 header with TLVs, split over reads, then data`, async () => {
    const seen: Seen[] = [];
    await using server = echoServer(backend, { timeout: 2000 }, seen);
    const header = encodeProxyHeader({
      version: 2,
      source: CLIENT6,
      destination: { transport: "tcp", hostname: "2001:db8::1", port: 443 },
      tlvs: [
        { type: PP2_TYPE_AUTHORITY, value: encode("echo.example") },
        { type: PP2_TYPE_ALPN, value: encode("h2") },
      ],
    });
    const data = encode("x".repeat(100_000));
    const message = concat([header, data]);
    const answer = await exchange(server.addr.port, [
      message.subarray(0, 7),
      message.subarray(7, 20),
      message.subarray(20, header.length + 3),
      message.subarray(header.length + 3),
    ]);
    assertEquals(answer.length, data.length);
    assertEquals(decode(answer), decode(data));
    await waitFor(() => seen[0]?.lost === 1, "the connection to end");
    assertEquals(seen[0].peername, CLIENT6);
    assertEquals(seen[0].proxyHeader?.authority, "echo.example");
    assertEquals(seen[0].proxyHeader?.alpn, "h2");
  });

  Deno.test(`proxy protocol (${backend}): a connection without a header is closed unanswered, counted, and never made`, async () => {
    const seen: Seen[] = [];
    await using server = echoServer(backend, true, seen);
    for (const first of ["hello\n", "GET / HTTP/1.1\r\n\r\n", "PROXY TCP4 nonsense\r\n"]) {
      assertEquals(decode(await exchange(server.addr.port, [encode(first)])), "");
    }
    await waitFor(() => server.connections === 0, "the connections to close");
    assertEquals(server.counters.proxyRefused, 3);
    assertEquals(server.counters.accepted, 0); // not served: counted as refused only
    assertEquals(seen.map((s) => s.made + s.lost), [0, 0, 0]);
  });

  Deno.test(`proxy protocol (${backend}): a header not whole within the timeout closes the connection`, async () => {
    const seen: Seen[] = [];
    await using server = echoServer(backend, { timeout: 200 }, seen);
    const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.addr.port });
    await writeAll(conn, encode("PROXY TCP4 192.0.2.7"));
    const end = await outcome(readToEnd(conn), 3000);
    conn.close();
    assert(end === "resolved" || end.includes("ConnectionReset"), end);
    assertEquals(server.counters.proxyRefused, 1);
    assertEquals(seen[0].made, 0);
  });

  Deno.test(`proxy protocol (${backend}): a LOCAL header (a health check) keeps the socket's peer`, async () => {
    const seen: Seen[] = [];
    await using server = echoServer(backend, true, seen);
    const header = encodeProxyHeader({ version: 2, command: "local" });
    assertEquals(decode(await exchange(server.addr.port, [header, encode("ping")])), "ping");
    await waitFor(() => seen[0]?.lost === 1, "the connection to end");
    assertEquals(seen[0].peername?.hostname, "127.0.0.1");
    assertEquals(seen[0].proxyHeader?.command, "local");
  });

  Deno.test(`proxy protocol (${backend}): a source outside the trusted list is closed at once`, async () => {
    const seen: Seen[] = [];
    await using server = echoServer(backend, { trusted: "10.0.0.0/8,::1" }, seen);
    const header = encode("PROXY TCP4 192.0.2.7 198.51.100.1 40001 8888\r\n");
    assertEquals(decode(await exchange(server.addr.port, [header, encode("hi")])), "");
    await waitFor(() => server.counters.untrusted === 1, "the refusal to be counted");
    assertEquals(seen.length, 0);
  });

  Deno.test(`proxy protocol (${backend}): the end of input before the header is a refusal`, async () => {
    const seen: Seen[] = [];
    await using server = echoServer(backend, true, seen);
    assertEquals(decode(await exchange(server.addr.port, [encode("PROXY TCP4 ")])), "");
    await waitFor(() => server.counters.proxyRefused === 1, "the refusal to be counted");
    assertEquals(seen[0].made, 0);
  });

  Deno.test(`proxy protocol (${backend}): what a slow v2 header holds counts against the budget`, async () => {
    const seen: Seen[] = [];
    await using server = echoServer(backend, { timeout: 300 }, seen);
    const header = encodeProxyHeader({
      version: 2,
      source: CLIENT,
      destination: CLIENT,
      tlvs: [{ type: 0xe4, value: new Uint8Array(60_000) }],
    });
    const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.addr.port });
    await writeAll(conn, header.subarray(0, 40_000));
    await waitFor(() => server.counters.buffered >= 40_000, "the held bytes to be counted");
    const end = await outcome(readToEnd(conn), 3000);
    conn.close();
    assert(end === "resolved" || end.includes("ConnectionReset"), end);
    await waitFor(() => server.counters.buffered === 0, "the held bytes to be released");
    assertEquals(server.counters.proxyRefused, 1);
  });

  Deno.test(`proxy protocol (${backend}): the stream API sees the header's client`, async () => {
    const peers: string[] = [];
    await using server = serveTcpStreams(
      { port: 0, backend, proxyProtocol: true },
      async (reader, writer) => {
        const peer = writer.getExtraInfo("peername") as Deno.NetAddr;
        peers.push(`${peer.hostname}:${peer.port}`);
        for await (const chunk of reader) writer.write(chunk);
        await writer.close();
      },
    );
    const header = encode("PROXY TCP6 2001:db8::7 2001:db8::1 40002 443\r\n");
    assertEquals(
      decode(await exchange(server.addr.port, [header, encode("streamed")])),
      "streamed",
    );
    assertEquals(peers, ["2001:db8::7:40002"]);
  });
}

Deno.test("proxyProtocol options are checked up front", () => {
  const factory = () => ({});
  assertThrows(
    () => serveTcp({ port: 0, proxyProtocol: { timeout: 0 } }, factory),
    RangeError,
    "proxyProtocol.timeout 0",
  );
  assertThrows(
    () => serveTcp({ port: 0, proxyProtocol: { trusted: "10.0.0.0/33" } }, factory),
    RangeError,
    "10.0.0.0/33",
  );
  assertThrows(
    () => serveTcp({ port: 0, proxyProtocol: "yes" as unknown as boolean }, factory),
    TypeError,
    'proxyProtocol "yes"',
  );
});

for (const backend of ["deno", "epoll"] as const) {
  Deno.test(`sendProxy (${backend} client): the server sees the client's own address, or the one given`, async () => {
    const seen: Seen[] = [];
    await using server = echoServer("epoll", true, seen);
    const got: string[] = [];
    const { transport } = await connectTcp(
      { port: server.addr.port, backend, sendProxy: 2 },
      () => ({
        connectionMade: (t: Transport) => t.write(encode("first")),
        dataReceived: (data: Uint8Array) => void got.push(decode(data)),
      }),
    );
    await waitFor(() => got.join("") === "first", "the echo");
    const local = transport.getExtraInfo("sockname");
    transport.close();
    await waitFor(() => seen[0]?.lost === 1, "the server's side to end");
    assertEquals(seen[0].peername, local);
    assertEquals(seen[0].proxyHeader?.version, 2);

    const { transport: second } = await connectTcp(
      { port: server.addr.port, backend, sendProxy: { version: 1, source: CLIENT } },
      () => ({}),
    );
    await waitFor(() => seen.length === 2 && seen[1].made === 1, "the second connection");
    second.close();
    assertEquals(seen[1].peername, CLIENT);
    assertEquals(seen[1].proxyHeader?.version, 1);
  });
}

Deno.test("sendProxy: a bad value is refused before connecting", async () => {
  await assertRejects(
    () => connectTcp({ port: 9, sendProxy: 3 as 2 }, () => ({})),
    TypeError,
    "sendProxy 3",
  );
});

for (const backend of BACKENDS) {
  Deno.test(`proxy protocol (${backend}): through a forwarding proxy that sends the header, 1 MB comes back whole and the client is named`, async () => {
    const seen: Seen[] = [];
    await using origin = echoServer(backend, true, seen);
    // A load balancer: each connection is forwarded to the origin, announced with a v2 header.
    await using balancer = serveTcp({ port: 0, backend }, (): Protocol => {
      let downstream: Transport;
      let upstream: Transport | undefined;
      const early: Uint8Array[] = [];
      return {
        connectionMade(t) {
          downstream = t;
          connectTcp({
            port: origin.addr.port,
            backend,
            sendProxy: {
              version: 2,
              source: t.getExtraInfo("peername") as Deno.NetAddr,
              destination: t.getExtraInfo("sockname") as Deno.NetAddr,
            },
          }, () => ({
            dataReceived: (data: Uint8Array) => downstream.write(data),
            eofReceived: () => void downstream.writeEof(),
          })).then(({ transport }) => {
            upstream = transport;
            for (const chunk of early) transport.write(chunk);
          });
        },
        dataReceived(data) {
          if (upstream) upstream.write(data);
          else early.push(data.slice());
        },
        eofReceived() {
          const end = () => upstream ? upstream.writeEof() : setTimeout(end, 5);
          end();
          return true;
        },
      };
    });
    const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port: balancer.addr.port });
    const data = new Uint8Array(1 << 20).map((_, i) => i * 7);
    const [, answer] = await Promise.all([
      writeAll(conn, data).then(() => conn.closeWrite()),
      readToEnd(conn),
    ]);
    const local = conn.localAddr as Deno.NetAddr;
    conn.close();
    assertEquals(answer.length, data.length);
    assert(answer.every((byte, i) => byte === data[i]), "the bytes came back as sent");
    await waitFor(() => seen[0]?.lost === 1, "the origin's side to end");
    assertEquals(seen[0].peername?.port, local.port);
  });
}

for (const backend of BACKENDS) {
  Deno.test(`proxy protocol (${backend}): data after the header waits while connectionMade paused reading`, async () => {
    const events: string[] = [];
    let transport: Transport | undefined;
    await using server = serveTcp({ port: 0, backend, proxyProtocol: true }, () => ({
      connectionMade(t: Transport) {
        transport = t;
        t.pauseReading();
        events.push("made, paused");
      },
      dataReceived(data: Uint8Array) {
        events.push(`data ${decode(data)}`);
        transport!.write(data);
      },
    }));
    const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port: server.addr.port });
    await writeAll(conn, encode("PROXY TCP4 192.0.2.7 198.51.100.1 40001 8888\r\nearly"));
    await waitFor(() => events.length > 0, "the connection to be made");
    await waitFor(() => unreadByServer((conn.localAddr as Deno.NetAddr).port) === 0, "the read");
    assertEquals(events, ["made, paused"]);
    assertEquals(server.counters.buffered, "early".length); // held, and counted
    transport!.resumeReading();
    assertEquals(events, ["made, paused", "data early"]);
    assertEquals(decode(await readExactly(conn, 5)), "early");
    conn.close();
  });
}

Deno.test("proxy protocol (epoll): a BufferedProtocol gets the data that came with the header", async () => {
  const buffer = new Uint8Array(7);
  let transport: Transport;
  await using server = serveTcp({ port: 0, backend: "epoll", proxyProtocol: true }, () => ({
    connectionMade(t: Transport) {
      transport = t;
    },
    getBuffer: () => buffer,
    bufferUpdated(n: number) {
      transport.write(buffer.subarray(0, n));
    },
  }));
  const header = "PROXY TCP4 192.0.2.7 198.51.100.1 40001 8888\r\n";
  const answer = await exchange(server.addr.port, [
    encode(header + "in one segment, longer than 7"),
  ]);
  assertEquals(decode(answer), "in one segment, longer than 7");
});
