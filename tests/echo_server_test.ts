import { assert, assertEquals, assertThrows } from "@std/assert";
import { type EchoApi, EchoProtocol, echoStreamHandler, serveEcho } from "../src/echo/mod.ts";
import { serveTcp, TCP_BACKENDS, type Transport } from "../src/tcp/mod.ts";
import { serveTcpStreams } from "../mod.ts";
import {
  assertSameBytes,
  decode,
  dial,
  encode,
  randomBytes,
  readExactly,
  readToEnd,
  waitFor,
  writeAll,
  writeInChunks,
} from "./_helpers.ts";

const APIS: EchoApi[] = ["protocol", "stream"];

/** Sends `data` in random chunks while reading the echo; returns what came back before EOF. */
async function roundTrip(addr: Deno.NetAddr, data: Uint8Array, seed: number): Promise<Uint8Array> {
  const conn = await dial(addr);
  try {
    const reading = readToEnd(conn);
    await writeInChunks(conn, data, seed);
    conn.closeWrite();
    return await reading;
  } finally {
    conn.close();
  }
}

for (const backend of TCP_BACKENDS) {
  for (const api of APIS) {
    Deno.test(`${backend}: ${api} API: 1 MiB in random-sized chunks comes back byte-exact`, async () => {
      await using server = serveEcho({ port: 0, backend, api });
      const data = randomBytes(1 << 20, 42);
      assertSameBytes(await roundTrip(server.addr, data, 5), data);
    });

    Deno.test(`${backend}: ${api} API: a peer that sends then half-closes gets its full echo, then a close`, async () => {
      await using server = serveEcho({ port: 0, backend, api });
      const conn = await dial(server.addr);
      const data = randomBytes(3 << 20, 8);
      // Write everything first (the server echoes meanwhile), then half-close, then read.
      const reading = readToEnd(conn);
      await writeAll(conn, data);
      conn.closeWrite();
      assertSameBytes(await reading, data);
      conn.close();
      await waitFor(() => server.connections === 0, "the server to close its side");
    });

    Deno.test(`${backend}: ${api} API: 200 concurrent clients each get their own bytes back`, async () => {
      await using server = serveEcho({ port: 0, backend, api });
      const payloads = Array.from({ length: 200 }, (_, i) => randomBytes(32 * 1024 + i, i + 100));
      const results = await Promise.all(payloads.map((p, i) => roundTrip(server.addr, p, i)));
      results.forEach((r, i) => assertSameBytes(r, payloads[i], `client ${i}`));
    });

    Deno.test(`${backend}: ${api} API: once mode answers the first read, then closes`, async () => {
      await using server = serveEcho({ port: 0, backend, api, mode: "once" });
      const conn = await dial(server.addr);
      await writeAll(conn, encode("first"));
      assertEquals(decode(await readToEnd(conn)), "first");
      conn.close();
    });

    Deno.test(`${backend}: ${api} API: prefix mode puts the prefix before each answer`, async () => {
      await using server = serveEcho({ port: 0, backend, api, prefix: "GOT:" });
      const conn = await dial(server.addr);
      await writeAll(conn, encode("one"));
      assertEquals(decode(await readExactly(conn, 7)), "GOT:one");
      await writeAll(conn, encode("two"));
      assertEquals(decode(await readExactly(conn, 7)), "GOT:two");
      conn.closeWrite();
      assertEquals(await readToEnd(conn), new Uint8Array(0));
      conn.close();
    });

    Deno.test(`${backend}: ${api} API: until mode keeps everything until a terminator split across writes`, async () => {
      await using server = serveEcho({ port: 0, backend, api, mode: "until" });
      const conn = await dial(server.addr);
      const reading = readToEnd(conn);
      for (const part of ["hello ", "world q", "ui", "t", "\n"]) {
        await writeAll(conn, encode(part));
        await new Promise((resolve) => setTimeout(resolve, 5)); // separate reads on the server
      }
      assertEquals(decode(await reading), "hello world quit\n");
      conn.close();
    });

    Deno.test(`${backend}: ${api} API: until mode sends back what it kept when the peer stops first`, async () => {
      await using server = serveEcho({ port: 0, backend, api, until: "END" });
      const conn = await dial(server.addr);
      await writeAll(conn, encode("no terminator here"));
      conn.closeWrite();
      assertEquals(decode(await readToEnd(conn)), "no terminator here");
      conn.close();
    });

    Deno.test(`${backend}: ${api} API: shutdown flushes every open connection, then closes it`, async () => {
      const payload = randomBytes(4 << 20, 77); // more than the socket buffers hold
      const server = api === "protocol"
        ? serveTcp(
          { port: 0, backend },
          () => ({ connectionMade: (t: Transport) => t.write(payload) }),
        )
        : serveTcpStreams({ port: 0, backend }, async (reader, writer) => {
          writer.write(payload);
          await reader.read(); // stays here until shutdown ends the input
        });
      const conns = [await dial(server.addr), await dial(server.addr)];
      await waitFor(() => server.connections === 2, "two connections");
      const finished = server.shutdown(); // the payloads are still pending: nobody read yet
      for (const conn of conns) {
        assertSameBytes(await readToEnd(conn), payload, "flushed before the close");
        conn.close();
      }
      await finished;
      assertEquals(server.connections, 0);
    });
  }

  Deno.test(`${backend}: shutdown: a second call aborts connections that are still flushing`, async () => {
    const server = serveTcp({ port: 0, backend }, () => ({
      connectionMade: (t: Transport) => t.write(randomBytes(32 << 20)),
    }));
    const conn = await dial(server.addr); // never reads: 32 MiB cannot be flushed
    await waitFor(() => server.connections === 1, "the connection");
    const first = server.shutdown();
    const second = server.shutdown();
    await Promise.all([first, second]);
    assertEquals(server.connections, 0);
    const got = await readToEnd(conn).catch(() => new Uint8Array(0));
    assert(got.length < 32 << 20, "an aborted connection sent everything");
    conn.close();
  });

  Deno.test(`${backend}: shutdown: connections still flushing after shutdownTimeout are aborted`, async () => {
    const server = serveTcp({ port: 0, backend, shutdownTimeout: 50 }, () => ({
      connectionMade: (t: Transport) => t.write(randomBytes(32 << 20)),
    }));
    const conn = await dial(server.addr);
    await waitFor(() => server.connections === 1, "the connection");
    await server.shutdown(); // resolves only because the timeout aborts
    assertEquals(server.connections, 0);
    conn.close();
  });

  Deno.test(`${backend}: aborting the signal shuts the server down`, async () => {
    const controller = new AbortController();
    const server = serveEcho({ port: 0, backend, signal: controller.signal });
    const conn = await dial(server.addr);
    await waitFor(() => server.connections === 1, "the connection");
    controller.abort();
    await server.finished;
    assertEquals(await readToEnd(conn), new Uint8Array(0));
    conn.close();
    const refused = await dial(server.addr).then((c) => (c.close(), false), () => true);
    assert(refused, "the listener still accepts after shutdown");
  });

  Deno.test(`${backend}: a server started with an aborted signal stops at once`, async () => {
    const server = serveEcho({ port: 0, backend, signal: AbortSignal.abort() });
    await server.finished;
  });

  Deno.test(`${backend}: await using shuts the server down at the end of the scope`, async () => {
    let finished: Promise<void>;
    {
      await using server = serveEcho({ port: 0, backend });
      finished = server.finished;
    }
    await finished; // already resolved: the scope's dispose awaited it
  });

  for (const api of APIS) {
    Deno.test(`${backend}: ${api} API: a client that does not read stops the server reading (bounded memory)`, async () => {
      let received = 0;
      let peakWriteBuffer = 0;
      const server = api === "protocol"
        ? serveTcp({ port: 0, backend }, () => {
          const echo = new EchoProtocol();
          let transport: Transport;
          return {
            connectionMade: (t) => echo.connectionMade(transport = t),
            dataReceived(data) {
              received += data.length;
              echo.dataReceived(data);
              peakWriteBuffer = Math.max(peakWriteBuffer, transport.getWriteBufferSize());
            },
            eofReceived: () => echo.eofReceived(),
            // The echo stops reading while its peer does not read: that is what is tested.
            pauseWriting: () => echo.pauseWriting(),
            resumeWriting: () => echo.resumeWriting(),
          };
        })
        : serveTcpStreams({ port: 0, backend }, (reader, writer) => {
          const write = writer.write.bind(writer);
          writer.write = (data) => {
            received += data.length;
            write(data);
            peakWriteBuffer = Math.max(peakWriteBuffer, writer.transport.getWriteBufferSize());
          };
          return echoStreamHandler()(reader, writer);
        });
      const conn = await dial(server.addr);
      const data = randomBytes(64 << 20, 11);
      let written = false;
      const writing = writeAll(conn, data).then(() => (written = true));
      // Wait until the server stops taking data in (every buffer on the path is full).
      let last = -1;
      await waitFor(
        () => {
          const stalled = received === last && received > 0;
          last = received;
          return stalled;
        },
        "the server to stop reading",
        20_000,
        200,
      );
      assertEquals(written, false, "the client wrote 64 MiB: the server never stopped reading");
      assert(received < 32 << 20, `the server took in ${received} bytes`);
      assert(peakWriteBuffer <= 1 << 20, `server write buffer peaked at ${peakWriteBuffer} bytes`);
      // Now read: every byte comes back in order.
      const echoed = readExactly(conn, data.length);
      await writing;
      assertSameBytes(await echoed, data);
      conn.close();
      await server.shutdown();
    });
  }
}

Deno.test("invalid server options fail before listening, naming the value", () => {
  assertThrows(() => serveEcho({ port: 70000 }), RangeError, "Cannot use port 70000");
  assertThrows(() => serveEcho({ port: -1 }), RangeError, "from 0 to 65535");
  assertThrows(() => serveEcho({ hostname: "" }), TypeError, "Cannot use hostname");
  assertThrows(() => serveEcho({ readBufferSize: 0 }), RangeError, "Cannot use readBufferSize 0");
  assertThrows(() => serveEcho({ highWaterMark: -5 }), RangeError, "Cannot use highWaterMark -5");
  assertThrows(
    () => serveEcho({ highWaterMark: 10, lowWaterMark: 20 }),
    RangeError,
    "low water mark 20 is above high water mark 10",
  );
  assertThrows(
    () => serveEcho({ mode: "loud" as "echo" }),
    RangeError,
    'Cannot use echo mode "loud"',
  );
  assertThrows(
    () => serveEcho({ mode: "echo", prefix: "x" }),
    RangeError,
    'Cannot use prefix with mode "echo"',
  );
  assertThrows(
    () => serveEcho({ prefix: "x", until: "y" }),
    RangeError,
    "Cannot use both prefix and until",
  );
  assertThrows(
    () => serveEcho({ until: "" }),
    RangeError,
    'Cannot use until "": the terminator is empty',
  );
  assertThrows(() => serveEcho({ api: "rest" as "stream" }), RangeError, 'Cannot use api "rest"');
  assertThrows(() => serveEcho({ limit: -1 }), RangeError, "Cannot use limit -1");
  assertThrows(() => serveEcho({ shutdownTimeout: -1 }), RangeError, "Cannot use shutdownTimeout");
});

Deno.test("a port in use gives an error that names the address and what to do", () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const error = assertThrows(
    () => serveEcho({ port: listener.addr.port }),
    Deno.errors.AddrInUse,
  ) as Error;
  assert(error.message.includes(`127.0.0.1:${listener.addr.port}`), error.message);
  assert(error.message.includes("already in use"), error.message);
});
