import { assert, assertEquals, assertRejects, assertStringIncludes } from "@std/assert";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { connectTcpStreams, serveEcho, serveTcpStreams, StreamWriter } from "../mod.ts";
import { TCP_BACKENDS, type Transport } from "../src/tcp/mod.ts";
import {
  assertSameBytes,
  decode,
  dial,
  encode,
  outcome,
  randomBytes,
  readToEnd,
  waitFor,
  writeAll,
} from "./_helpers.ts";

for (const backend of TCP_BACKENDS) {
  Deno.test(`${backend}: connectTcpStreams: lines, exact reads and a clean close against the echo server`, async () => {
    await using server = serveEcho({ port: 0, backend, api: "stream" });
    const { reader, writer } = await connectTcpStreams({ port: server.addr.port });
    writer.write("first line\nsecond");
    writer.write(encode(" line\n"));
    await writer.drain();
    assertEquals(decode((await reader.readLine())!), "first line\n");
    assertEquals(decode(await reader.readExactly(6)), "second");
    assertEquals(decode(await reader.readUntil("\n")), " line\n");
    assertEquals((writer.getExtraInfo("peername") as Deno.NetAddr).port, server.addr.port);
    writer.writeEof();
    assertEquals(await reader.read(), null); // the server closes after our EOF
    await writer.close();
    await writer.closed;
  });

  Deno.test(`${backend}: readable and writable interoperate with web streams: pipe 1 MiB through the echo`, async () => {
    await using server = serveEcho({ port: 0, backend, api: "stream" });
    const { reader, writer } = await connectTcpStreams({ port: server.addr.port });
    const data = randomBytes(1 << 20, 21);
    const source = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < data.length; i += 10_000) controller.enqueue(data.slice(i, i + 10_000));
        controller.close();
      },
    });
    const [, echoed] = await Promise.all([
      source.pipeTo(writer.writable), // closing it half-closes the connection
      new Response(reader.readable).arrayBuffer(),
    ]);
    assertSameBytes(new Uint8Array(echoed), data);
    await writer.closed;
  });
}

for (const backend of TCP_BACKENDS) {
  Deno.test(`${backend}: writer.abort() drops what is buffered and ends the connection at once`, async () => {
    const PAYLOAD = 8 << 20;
    const ended = Promise.withResolvers<string>();
    await using server = serveTcpStreams(
      // A small send buffer: most of the payload waits in the writer's queue.
      { port: 0, backend, sendBufferSize: 4096 },
      async (_reader, writer) => {
        writer.write(new Uint8Array(PAYLOAD));
        const queued = writer.transport.getWriteBufferSize();
        writer.abort();
        ended.resolve(`${queued} ${writer.isClosing()} ${await outcome(writer.closed, 1000)}`);
      },
    );
    const conn = await dial(server.addr);
    const [queued, closing, closed] = (await ended.promise).split(" ");
    assert(Number(queued) > PAYLOAD / 2, `only ${queued} bytes were queued`);
    assertEquals([closing, closed], ["true", "resolved"]);
    // A graceful close would send all of it; an abort drops the queue.
    const got = await readToEnd(conn).catch(() => new Uint8Array(0));
    conn.close();
    assert(got.length < PAYLOAD / 2, `the aborted writer sent ${got.length} of ${PAYLOAD} bytes`);
  });

  Deno.test(`${backend}: aborting the writable stream aborts the connection`, async () => {
    const PAYLOAD = 8 << 20;
    await using server = serveTcpStreams(
      { port: 0, backend, sendBufferSize: 4096 },
      async (_reader, writer) => {
        const stream = writer.writable.getWriter();
        const writing = stream.write(new Uint8Array(PAYLOAD)).catch(() => "rejected");
        // The chunk reaches the connection; its drain waits on a peer that does not read yet.
        await waitFor(() => writer.transport.getWriteBufferSize() > 0, "the write to queue");
        await stream.abort(new Error("changed my mind"));
        assertEquals(await writing, "rejected");
      },
    );
    const conn = await dial(server.addr);
    const got = await readToEnd(conn).catch(() => new Uint8Array(0));
    conn.close();
    assert(got.length < PAYLOAD / 2, `the aborted stream sent ${got.length} of ${PAYLOAD} bytes`);
  });
}

Deno.test("writer.closed and drain reject with the error when the peer resets", async () => {
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = server.accept();
  const { reader, writer } = await connectTcpStreams({ port: server.addr.port });
  const peer = await accepted;
  await writeAll(peer, encode("unread by the peer"));
  await reader.readExactly(4);
  writer.write(randomBytes(64));
  // Closing with unread data in the receive buffer makes the kernel send a reset.
  peer.close();
  writer.write(randomBytes(8 << 20));
  await assertRejects(() => writer.closed);
  await assertRejects(() => writer.drain());
  server.close();
});

for (const backend of TCP_BACKENDS) {
  Deno.test(`${backend}: writer.closed asked for only after the connection ended still settles, each way`, async () => {
    const ended = Promise.withResolvers<StreamWriter>();
    const server = serveTcpStreams({ port: 0, backend }, async (reader, writer) => {
      while (await reader.read() !== null);
      ended.resolve(writer);
    });
    const conn = await dial(server.addr);
    conn.close();
    const writer = await ended.promise;
    await waitFor(() => server.connections === 0, "the connection to close");
    assertEquals(await outcome(writer.closed), "resolved");
    await server.shutdown();

    // A client whose peer resets: the loss comes before anyone asks.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const accepted = listener.accept();
    const client = await connectTcpStreams({ port: listener.addr.port });
    const peer = await accepted;
    await writeAll(peer, encode("unread"));
    await client.reader.readExactly(1);
    peer.close();
    client.writer.write(randomBytes(8 << 20)); // to a closed socket: the peer's kernel resets
    await assertRejects(() => client.writer.drain()); // rejects only once the connection is lost
    assertStringIncludes(await outcome(client.writer.closed), "rejected");
    listener.close();
  });
}

Deno.test("a hand-made StreamWriter without a closed promise uses flow.closed, else transport.closed", async () => {
  const transportClosed = Promise.resolve();
  const transport = { closed: transportClosed, close() {} } as Partial<Transport> as Transport;
  const flowClosed = Promise.resolve();
  const drained = () => Promise.resolve();
  assert(new StreamWriter(transport, { waitForDrain: drained }).closed === transportClosed);
  const flow = { waitForDrain: drained, closed: flowClosed };
  assert(new StreamWriter(transport, flow).closed === flowClosed);
  assert(await new StreamWriter(transport, flow).close() === undefined);
});

for (const backend of TCP_BACKENDS) {
  Deno.test(`${backend}: a stream handler that throws closes only its connection, logged with the peer`, async () => {
    const records: LogRecord[] = [];
    await configure({
      sinks: { memory: (record) => void records.push(record) },
      loggers: [
        { category: ["echo"], lowestLevel: "debug", sinks: ["memory"] },
        { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
      ],
    });
    try {
      const server = serveTcpStreams({ port: 0, backend }, async (reader, writer) => {
        for (let line; (line = await reader.readLine()) !== null;) {
          if (decode(line) === "boom\n") throw new Error("boom in the handler");
          writer.write(line);
          await writer.drain();
        }
      });
      const bad = await dial(server.addr);
      const good = await dial(server.addr);
      await writeAll(bad, encode("boom\n"));
      assertEquals(await readToEnd(bad), new Uint8Array(0));
      await writeAll(good, encode("fine\n"));
      good.closeWrite();
      assertEquals(decode(await readToEnd(good)), "fine\n");
      const badPort = (bad.localAddr as Deno.NetAddr).port;
      const goodPort = (good.localAddr as Deno.NetAddr).port;
      bad.close();
      good.close();
      await server.shutdown();

      const messages = records.map((r) => ({
        level: r.level,
        category: r.category.join("."),
        text: r.message.map(String).join(""),
      }));
      const about = (port: number) => messages.filter((m) => m.text.includes(`127.0.0.1:${port}`));
      const failure = about(badPort).find((m) => m.level === "error");
      assert(failure, `no error logged for the failing peer: ${JSON.stringify(messages)}`);
      assert(failure!.text.includes("boom in the handler"), failure!.text);
      assertEquals(about(goodPort).filter((m) => m.level === "error"), []);
      for (const port of [badPort, goodPort]) {
        const info = about(port).filter((m) => m.level === "info").map((m) => m.text);
        assert(info.some((t) => t.startsWith("Connection made with")), JSON.stringify(info));
        assert(info.some((t) => t.startsWith("Connection lost with")), JSON.stringify(info));
      }
      const debug = about(goodPort).filter((m) => m.level === "debug").map((m) => m.text);
      assert(debug.includes(`Received 5 bytes from 127.0.0.1:${goodPort}`), JSON.stringify(debug));
      assert(debug.includes(`Sent 5 bytes to 127.0.0.1:${goodPort}`), JSON.stringify(debug));
      // Each connection's socket options, read back from the kernel, at debug level.
      const options = records.find((r) =>
        r.category.join(".") === "echo.tcp" && r.properties.peer === `127.0.0.1:${goodPort}` &&
        r.properties.values !== undefined
      );
      assert(options, "no socket-options line for the connection");
      assertEquals((options!.properties.values as { noDelay: boolean }).noDelay, true);
      assert(messages.every((m) => m.category === "echo.tcp" || m.category === "echo.sockopt"));
    } finally {
      await reset();
    }
  });
}

Deno.test("the library prints nothing until the application configures LogTape", async () => {
  const script = `
    import { serveEcho } from "${new URL("../mod.ts", import.meta.url)}";
    const server = serveEcho({ port: 0 });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    await conn.write(new TextEncoder().encode("quiet"));
    conn.closeWrite();
    const n = await conn.read(new Uint8Array(16));
    conn.close();
    await server.shutdown();
    Deno.exit(n === 5 ? 0 : 3);
  `;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", script],
    signal: AbortSignal.timeout(60_000),
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(code, 0, decode(stderr));
  assertEquals(decode(stdout), "");
  assertEquals(decode(stderr), "");
});
