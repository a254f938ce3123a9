import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import {
  connectTcp,
  getSocketOptions,
  serveTcp,
  type SocketOptionValues,
  type Transport,
} from "../src/tcp/mod.ts";
import { serveEcho, serveTcpStreams } from "../mod.ts";
import { SocketTransport } from "../src/core/_transport.ts";
import { ConnDriver } from "../src/drivers/_conn_driver.ts";
import { dial, encode, readExactly, waitFor, writeAll } from "./_helpers.ts";

const linux = Deno.build.os === "linux";

/** A server whose protocols record their transports. */
function recordingServer(options: Parameters<typeof serveTcp>[0]) {
  const transports: Transport[] = [];
  const server = serveTcp(options, () => ({
    connectionMade: (t: Transport) => void transports.push(t),
    dataReceived(this: unknown, data: Uint8Array) {
      transports.find((t) => !t.isClosing())?.write(data);
    },
  }));
  return { server, transports };
}

const TUNED = {
  receiveBufferSize: 65536,
  sendBufferSize: 65536,
  noDelay: true,
  keepAlive: { idle: 1800, count: 5, interval: 15 },
  backlog: 100,
};

function tunedValues(values: SocketOptionValues) {
  const { receiveBufferSize, sendBufferSize, noDelay, keepAlive } = values;
  const { keepAliveIdle, keepAliveInterval, keepAliveCount } = values;
  return {
    receiveBufferSize,
    sendBufferSize,
    noDelay,
    keepAlive,
    keepAliveIdle,
    keepAliveInterval,
    keepAliveCount,
  };
}

const TUNED_VALUES = {
  receiveBufferSize: 2 * 65536, // Linux keeps, and reports, twice what was asked
  sendBufferSize: 2 * 65536,
  noDelay: true,
  keepAlive: true,
  keepAliveIdle: 1800,
  keepAliveInterval: 15,
  keepAliveCount: 5,
};

Deno.test({
  name: "socket options: set once on the listener, read back on it and on accepted connections",
  ignore: !linux,
  async fn() {
    const { server, transports } = recordingServer({ port: 0, ...TUNED });
    assertEquals(tunedValues(server.getSocketOptions()), TUNED_VALUES);
    const client = await dial(server.addr);
    await waitFor(() => transports.length === 1, "the accepted connection");
    assertEquals(tunedValues(transports[0].getExtraInfo("socketOptions")), TUNED_VALUES);
    // The client's own socket is another socket, with the system's defaults.
    const clientValues = getSocketOptions(client);
    assertEquals([clientValues.keepAlive, clientValues.noDelay], [false, false]);
    client.close();
    await server.shutdown();
    assertThrows(() => server.getSocketOptions(), Deno.errors.BadResource, "it is shut down");
    assertThrows(
      () => transports[0].getExtraInfo("socketOptions"),
      Deno.errors.BadResource,
      "it is closed",
    );
  },
});

Deno.test({
  name: "socket options: the stream API and serveEcho pass them on too",
  ignore: !linux,
  async fn() {
    const seen = Promise.withResolvers<SocketOptionValues>();
    const streams = serveTcpStreams({ port: 0, ...TUNED }, async (reader, writer) => {
      seen.resolve(writer.getExtraInfo("socketOptions"));
      await reader.read(); // until the client hangs up
    });
    const conn = await dial(streams.addr);
    assertEquals(tunedValues(await seen.promise), TUNED_VALUES);
    conn.close();
    await streams.shutdown();

    const echo = serveEcho({ port: 0, api: "stream", ...TUNED });
    assertEquals(tunedValues(echo.getSocketOptions()), TUNED_VALUES);
    await echo.shutdown();
  },
});

Deno.test({
  name: "socket options: a client's connection gets its own options, found among many",
  ignore: !linux,
  async fn() {
    const server = serveEcho({ port: 0 });
    // Each client asks for other values: reading each back proves the right socket was set.
    const clients = [];
    for (let i = 1; i <= 20; i++) {
      const options = {
        port: server.addr.port,
        receiveBufferSize: 4096 * i,
        sendBufferSize: 8192 * i,
        noDelay: i % 2 === 0,
        keepAlive: { idle: i, interval: 100 + i, count: i },
        quickAck: true,
      };
      clients.push(await connectTcp(options, () => ({})));
    }
    clients.forEach(({ transport }, index) => {
      const i = index + 1;
      const values = transport.getExtraInfo("socketOptions");
      assertEquals(values, {
        reuseAddress: false,
        reusePort: false,
        receiveBufferSize: 2 * 4096 * i,
        sendBufferSize: 2 * 8192 * i,
        noDelay: i % 2 === 0,
        keepAlive: true,
        keepAliveIdle: i,
        keepAliveInterval: 100 + i,
        keepAliveCount: i,
        quickAck: true,
      });
    });
    for (const { transport } of clients) transport.close();
    await Promise.all(clients.map(({ transport }) => transport.closed));
    await server.shutdown();
  },
});

Deno.test({
  name: "socket options: IPv6 servers and clients are found and set too",
  ignore: !linux,
  async fn() {
    const { server, transports } = recordingServer({ hostname: "::1", port: 0, ...TUNED });
    const { transport } = await connectTcp(
      { hostname: "::1", port: server.addr.port, keepAlive: { idle: 77 } },
      () => ({}),
    );
    await waitFor(() => transports.length === 1, "the accepted connection");
    assertEquals(tunedValues(transports[0].getExtraInfo("socketOptions")), TUNED_VALUES);
    assertEquals(transport.getExtraInfo("socketOptions").keepAliveIdle, 77);
    transport.close();
    await transport.closed;
    await server.shutdown();
  },
});

Deno.test({
  name: "socket options: quickAck is re-armed after every read; without it the kernel drops it",
  ignore: !linux,
  async fn() {
    for (const quickAck of [false, true]) {
      const seen: boolean[] = [];
      const server = serveTcp({ port: 0, quickAck }, () => {
        let transport: Transport;
        return {
          connectionMade: (t) => void (transport = t),
          dataReceived(data) {
            // Read between the read and the echo: what the kernel does with the next ACK.
            seen.push(transport.getExtraInfo("socketOptions").quickAck!);
            transport.write(data);
          },
        };
      });
      const conn = await dial(server.addr);
      for (let i = 0; i < 10; i++) {
        await writeAll(conn, encode("ping"));
        await readExactly(conn, 4);
      }
      conn.close();
      await server.shutdown();
      // After a few request/response turns the kernel goes to delayed ACKs (ping-pong mode).
      assertEquals(seen.slice(-5), Array(5).fill(quickAck), `quickAck ${quickAck}: ${seen}`);
    }
  },
});

Deno.test({
  name:
    "socket options (deno backend): 300 accepted connections with quickAck cost no fd-table scan each",
  ignore: !linux,
  async fn() {
    // Only the deno backend looks descriptors up (epoll accepts them itself). In a process of
    // its own (see the fixture), which prints how many full scans the 300 lookups made.
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("./fixtures/locate_scans.ts", import.meta.url).pathname],
      signal: AbortSignal.timeout(60_000),
    }).output();
    assertEquals(code, 0, new TextDecoder().decode(stderr));
    const { accepted, scans } = JSON.parse(new TextDecoder().decode(stdout));
    assertEquals(accepted, 300);
    // Only the first connection may need a scan: the others are found by a few probes.
    assert(scans <= 1, `${scans} full scans for 300 connections`);
  },
});

Deno.test("socket options: bad values fail before any socket is opened", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  assertThrows(
    () => serveTcp({ port, keepAlive: { idle: 0 } }, () => ({})),
    RangeError,
    "Cannot use keepAlive.idle 0: it must be a whole number from 1 to 32767",
  );
  assertThrows(
    () => serveEcho({ port, receiveBufferSize: -1 }),
    RangeError,
    "Cannot use receiveBufferSize -1:",
  );
  // Nothing was left listening on the port.
  Deno.listen({ hostname: "127.0.0.1", port }).close();

  let accepted = 0;
  const server = serveTcp({ port: 0 }, () => ({ connectionMade: () => void accepted++ }));
  await assertRejects(
    () => connectTcp({ port: server.addr.port, keepAlive: { count: 500 } }, () => ({})),
    RangeError,
    "Cannot use keepAlive.count 500: it must be a whole number from 1 to 127",
  );
  // A good connection afterwards is the first the server sees.
  const { transport } = await connectTcp({ port: server.addr.port }, () => ({}));
  await waitFor(() => accepted === 1, "the good connection");
  transport.close();
  await transport.closed;
  await server.shutdown();
  assertEquals(accepted, 1);
});

Deno.test("socket options: reusePort on the deno backend without --unstable-net names the flag", () => {
  assertThrows(
    () => serveTcp({ port: 0, reusePort: true, backend: "deno" }, () => ({})),
    Deno.errors.NotSupported,
    "Cannot use reusePort on the deno backend: it needs Deno's --unstable-net flag",
  );
});

Deno.test({
  name: "getSocketOptions: a closed socket and a wrong argument are named",
  ignore: !linux,
  async fn() {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    const accepted = await listener.accept();
    accepted.close();
    conn.close();
    listener.close();
    assertThrows(() => getSocketOptions(conn), Deno.errors.NotFound, "is it closed?");
    assertThrows(() => getSocketOptions(listener), Deno.errors.NotFound, "is it closed?");
    assertThrows(() => getSocketOptions(null as never), TypeError, "it must be a Deno.TcpConn");
  },
});

Deno.test({
  name: "socket options: what a listener does not pass on is set on each accepted connection",
  ignore: !linux,
  async fn() {
    // Linux passes everything on, so build the setup macOS gets (its idle time stays behind).
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    using client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    const conn = await listener.accept();
    const driver = new ConnDriver(conn, {
      noDelay: undefined,
      keepAlive: undefined,
      quickAck: false,
      perConnection: [["keepAlive", "keepAlive", true], ["keepAliveIdle", "keepAlive.idle", 99]],
    });
    const transport = new SocketTransport(driver, {}, {});
    transport.start();
    const values = transport.getExtraInfo("socketOptions");
    assertEquals([values.keepAlive, values.keepAliveIdle], [true, 99]);
    assertEquals(getSocketOptions(client).keepAlive, false);
    transport.close();
    await transport.closed;
  },
});
