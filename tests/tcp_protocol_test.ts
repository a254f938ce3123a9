import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { getPoller } from "../src/poll/_poller.ts";
import { lastRead } from "../src/core/_last_read.ts";
import { openIoDescriptors } from "./_helpers.ts";
import {
  connectTcp,
  type Protocol,
  serveTcp,
  TCP_BACKENDS,
  type TcpBackend,
  type Transport,
  TransportClosedError,
} from "../src/tcp/mod.ts";
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
} from "./_helpers.ts";

/** A protocol that records its callbacks and lets a test script its behaviour. */
class Recorder implements Protocol {
  events: string[] = [];
  received: Uint8Array[] = [];
  transport!: Transport;
  lostError: Error | undefined;
  readonly lost = Promise.withResolvers<void>();
  readonly made = Promise.withResolvers<void>();
  constructor(
    readonly hooks: {
      made?: (t: Transport) => void;
      data?: (d: Uint8Array, t: Transport) => void;
      eof?: (t: Transport) => boolean | void;
    } = {},
  ) {}
  connectionMade(transport: Transport): void {
    this.events.push("made");
    this.transport = transport;
    this.hooks.made?.(transport);
    this.made.resolve();
  }
  dataReceived(data: Uint8Array): void {
    if (this.events.at(-1) !== "data") this.events.push("data");
    this.received.push(data.slice());
    this.hooks.data?.(data, this.transport);
  }
  eofReceived(): boolean | void {
    this.events.push("eof");
    return this.hooks.eof?.(this.transport);
  }
  connectionLost(error?: Error): void {
    this.events.push("lost");
    this.lostError = error;
    this.lost.resolve();
  }
  pauseWriting(): void {
    this.events.push("pause");
  }
  resumeWriting(): void {
    this.events.push("resume");
  }
  text(): string {
    return this.received.map(decode).join("");
  }
}

function recordingServer(hooks: Recorder["hooks"] = {}, backend?: TcpBackend) {
  const protocols: Recorder[] = [];
  const server = serveTcp({ hostname: "127.0.0.1", port: 0, backend }, () => {
    const p = new Recorder(hooks);
    protocols.push(p);
    return p;
  });
  return { server, protocols };
}

/** The first connection to `addr` is closed unanswered; a second is served (echoes "ok"). */
async function firstClosedSecondEchoed(addr: Deno.NetAddr): Promise<void> {
  const first = await dial(addr);
  assertEquals(await readToEnd(first), new Uint8Array(0));
  first.close();
  const second = await dial(addr);
  await writeAll(second, encode("ok"));
  assertEquals(decode(await readExactly(second, 2)), "ok");
  second.close();
}

for (const backend of TCP_BACKENDS) {
  const serve = (hooks: Recorder["hooks"] = {}) => recordingServer(hooks, backend);

  Deno.test(`${backend}: callbacks come in order: made, data, eof, lost, and lost exactly once`, async () => {
    const { server, protocols } = serve();
    const conn = await dial(server.addr);
    await writeAll(conn, encode("hello"));
    conn.closeWrite();
    assertEquals(await readToEnd(conn), new Uint8Array(0)); // eofReceived returned nothing: server closes
    conn.close();
    await protocols[0].lost.promise;
    await server.shutdown();
    assertEquals(protocols[0].events, ["made", "data", "eof", "lost"]);
    assertEquals(protocols[0].text(), "hello");
    assertEquals(protocols[0].lostError, undefined);
  });

  Deno.test(`${backend}: eofReceived returning true keeps the connection half-open for writing`, async () => {
    const { server, protocols } = serve({
      eof(t) {
        t.write(encode("after your eof"));
        t.writeEof(); // both directions done: the transport closes itself
        return true;
      },
    });
    const conn = await dial(server.addr);
    conn.closeWrite();
    assertEquals(decode(await readToEnd(conn)), "after your eof");
    conn.close();
    await protocols[0].lost.promise;
    await server.shutdown();
    assertEquals(protocols[0].events, ["made", "eof", "lost"]);
  });

  Deno.test(`${backend}: close() flushes what was written, then closes`, async () => {
    const payload = randomBytes(4 << 20, 3);
    const { server, protocols } = serve({
      made(t) {
        t.write(payload);
        t.close();
        assert(t.isClosing());
        assertThrows(() => t.write(encode("late")), TransportClosedError, "close() was called");
      },
    });
    const conn = await dial(server.addr);
    assertSameBytes(await readToEnd(conn), payload);
    conn.close();
    await protocols[0].lost.promise;
    await server.shutdown();
    assertEquals(protocols[0].events.filter((e) => e === "lost").length, 1);
  });

  Deno.test(`${backend}: abort() drops the buffer and calls connectionLost once without an error`, async () => {
    let written = 0;
    const { server, protocols } = serve({
      made(t) {
        // Write until bytes wait in our buffer (the kernel may take megabytes first).
        const chunk = randomBytes(1 << 20);
        do {
          t.write(chunk);
          written += chunk.length;
        } while (t.getWriteBufferSize() < 4 << 20 && written < 256 << 20);
        t.abort();
        t.abort();
        t.close();
      },
    });
    const conn = await dial(server.addr);
    const got = await readToEnd(conn).catch(() => new Uint8Array(0));
    conn.close();
    await protocols[0].lost.promise;
    await server.shutdown();
    assert(got.length < written, `abort sent all ${got.length} bytes`);
    assertEquals(protocols[0].events, ["made", "pause", "lost"]); // 4 MiB is past the high mark
    assertEquals(protocols[0].lostError, undefined);
  });

  Deno.test(`${backend}: writes are buffered in order and the water marks pause and resume the protocol`, async () => {
    // How much the kernel absorbs before write() has to buffer depends on its socket buffer
    // limits (tcp_rmem's maximum is 32 MiB on some hosts), so write until our own buffer is
    // past the high mark, then some more: the chunks that wait are the ones this test is about.
    const chunks: Uint8Array[] = [];
    let peakBuffer = 0;
    const { server, protocols } = serve({
      made(t) {
        t.setWriteBufferLimits({ high: 256 * 1024 });
        assertEquals(t.getWriteBufferLimits(), { high: 256 * 1024, low: 64 * 1024 });
        let extra = 8;
        while (extra > 0 && chunks.length < 2048) {
          const chunk = randomBytes(64 * 1024, chunks.length);
          chunks.push(chunk);
          t.write(chunk);
          if (t.getWriteBufferSize() > 256 * 1024) extra--;
        }
        peakBuffer = t.getWriteBufferSize();
        t.close();
      },
    });
    const conn = await dial(server.addr);
    await waitFor(() => protocols.length > 0, "connection");
    const expected = new Uint8Array(chunks.length * 64 * 1024);
    chunks.forEach((c, i) => expected.set(c, i * c.length));
    assertSameBytes(await readToEnd(conn), expected);
    conn.close();
    await protocols[0].lost.promise;
    await server.shutdown();
    assert(peakBuffer > 256 * 1024, `buffer peaked at ${peakBuffer}`);
    assertEquals(protocols[0].events, ["made", "pause", "resume", "lost"]);
  });

  Deno.test(`${backend}: pauseReading stops dataReceived until resumeReading`, async () => {
    let resumed = false;
    const { server, protocols } = serve({
      made(t) {
        t.pauseReading();
        assertEquals(t.isReading(), false);
      },
      data() {
        assert(resumed, "dataReceived while reading was paused");
      },
    });
    const conn = await dial(server.addr);
    await writeAll(conn, encode("while paused"));
    await waitFor(() => protocols.length > 0, "connection");
    // The data is on its way; give it time to be (wrongly) delivered before resuming.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assertEquals(protocols[0].received.length, 0);
    resumed = true;
    protocols[0].transport.resumeReading();
    await waitFor(() => protocols[0].text() === "while paused", "data after resume");
    conn.close();
    await protocols[0].lost.promise;
    await server.shutdown();
  });

  Deno.test(`${backend}: a protocol that throws loses only its own connection; the server keeps serving`, async () => {
    const { server, protocols } = serve({
      data(d, t) {
        if (decode(d).includes("boom")) throw new Error("boom in dataReceived");
        t.write(d);
      },
    });
    const good = await dial(server.addr);
    const bad = await dial(server.addr);
    await writeAll(bad, encode("boom\n"));
    assertEquals(await readToEnd(bad), new Uint8Array(0));
    bad.close();
    await writeAll(good, encode("still here"));
    assertEquals(decode(await readExactly(good, 10)), "still here");
    good.close();
    await Promise.all(protocols.map((p) => p.lost.promise));
    await server.shutdown();
    const failed = protocols.find((p) => p.lostError)!;
    assertEquals(failed.lostError?.message, "boom in dataReceived");
    assertEquals(failed.events, ["made", "data", "lost"]);
  });

  Deno.test(`${backend}: an async connectionMade that rejects loses only its connection, as a throw does`, async () => {
    let calls = 0;
    const lost: (Error | undefined)[] = [];
    const bothLost = Promise.withResolvers<void>();
    const server = serveTcp({ port: 0, backend }, () => {
      const refused = ++calls === 1;
      let t: Transport;
      return {
        // A proxy's: it connects upstream first, and that may fail.
        async connectionMade(x: Transport) {
          t = x;
          await Promise.resolve();
          if (refused) throw new Error("upstream refused");
        },
        dataReceived: (d: Uint8Array) => t.write(d),
        connectionLost(error?: Error) {
          lost.push(error);
          if (lost.length === 2) bothLost.resolve();
        },
      };
    });
    await firstClosedSecondEchoed(server.addr);
    await bothLost.promise;
    await server.shutdown();
    assertEquals(lost.map((error) => error?.message), ["upstream refused", undefined]);
  });

  Deno.test(`${backend}: a protocol factory that throws closes that connection only`, async () => {
    let calls = 0;
    const server = serveTcp({ port: 0, backend }, () => {
      if (++calls === 1) throw new Error("factory failed");
      let t: Transport;
      return { connectionMade: (x) => void (t = x), dataReceived: (d) => t.write(d) };
    });
    await firstClosedSecondEchoed(server.addr);
    await server.shutdown();
  });

  Deno.test(`${backend}: a protocol factory that returns nothing closes that connection only`, async () => {
    let calls = 0;
    const server = serveTcp({ port: 0, backend }, () => {
      if (++calls <= 2) return (calls === 1 ? undefined : null) as unknown as Protocol;
      let t: Transport;
      return { connectionMade: (x) => void (t = x), dataReceived: (d) => t.write(d) };
    });
    for (let i = 0; i < 2; i++) {
      const refused = await dial(server.addr);
      assertEquals(await readToEnd(refused).catch(() => new Uint8Array(0)), new Uint8Array(0));
      refused.close();
    }
    const served = await dial(server.addr);
    await writeAll(served, encode("ok"));
    assertEquals(decode(await readExactly(served, 2)), "ok");
    served.close();
    assertEquals(server.counters.accepted, 1);
    await server.shutdown();
  });

  Deno.test(`${backend}: a peer that resets mid-write gives connectionLost(error) and no leak`, async () => {
    const { server, protocols } = serve({
      data(_d, t) {
        t.write(randomBytes(16 << 20)); // far more than the socket buffers hold
      },
    });
    const conn = await dial(server.addr);
    await writeAll(conn, encode("go"));
    await readExactly(conn, 1000); // the server is writing now
    conn.close(); // unread data in our receive buffer: the kernel sends a reset
    await protocols[0].lost.promise;
    assertEquals(server.connections, 0);
    await server.shutdown();
    assert(protocols[0].lostError, "connectionLost got no error");
    assertEquals(protocols[0].events.filter((e) => e === "lost").length, 1);
  });

  Deno.test(`${backend}: a write after a reset throws TransportClosedError caused by the reset`, async () => {
    const { server, protocols } = serve({
      data(_d, t) {
        t.write(randomBytes(16 << 20));
      },
    });
    const conn = await dial(server.addr);
    await writeAll(conn, encode("go"));
    await readExactly(conn, 1000);
    conn.close(); // a reset, as above
    await protocols[0].lost.promise;
    await server.shutdown();
    const error = assertThrows(
      () => protocols[0].transport.write(encode("late")),
      TransportClosedError,
    );
    const { cause } = error;
    assert(
      cause instanceof Deno.errors.ConnectionReset || cause instanceof Deno.errors.BrokenPipe,
      `the cause should be the reset, not ${cause}`,
    );
    assertEquals(error.cause, protocols[0].lostError);
  });

  Deno.test(`${backend}: getExtraInfo gives peername and sockname`, async () => {
    const { server, protocols } = serve();
    const conn = await dial(server.addr);
    await waitFor(() => protocols.length === 1, "connection");
    const t = protocols[0].transport;
    assertEquals((t.getExtraInfo("sockname") as Deno.NetAddr).port, server.addr.port);
    assertEquals(
      (t.getExtraInfo("peername") as Deno.NetAddr).port,
      (conn.localAddr as Deno.NetAddr).port,
    );
    // Without proxyProtocol there is no header, and the peer is no proxy.
    assertEquals(t.getExtraInfo("proxyHeader"), null);
    assertEquals(t.getExtraInfo("proxyPeername"), null);
    assertThrows(
      () => t.getExtraInfo("nonsense" as "peername"),
      TypeError,
      'use "peername", "sockname", "socketOptions", "tls", "proxyHeader" or "proxyPeername"',
    );
    conn.close();
    await protocols[0].lost.promise;
    await server.shutdown();
  });
}

for (const backend of TCP_BACKENDS) {
  for (const hostname of ["127.0.0.1", "0.0.0.0"]) {
    Deno.test(`${backend}: sockname is still known in connectionLost, on a server bound to ${hostname} and its client`, async () => {
      const local = Promise.withResolvers<Deno.NetAddr>();
      const server = serveTcp({ hostname, port: 0, backend }, () => {
        let t: Transport;
        return {
          connectionMade: (x: Transport) => void (t = x),
          // Asked only once the connection is over, as a log line of it would.
          connectionLost: () => local.resolve(t.getExtraInfo("sockname") as Deno.NetAddr),
        };
      });
      const clientBackend = CLIENT_BACKENDS.includes(backend) ? backend : "deno";
      const { transport } = await connectTcp(
        { hostname: "127.0.0.1", port: server.addr.port, backend: clientBackend },
        () => ({}),
      );
      transport.close();
      await transport.closed;
      const client = transport.getExtraInfo("sockname") as Deno.NetAddr;
      assertEquals(client.hostname, "127.0.0.1");
      assert(client.port > 0 && client.port !== server.addr.port);
      assertEquals(await local.promise, {
        transport: "tcp",
        hostname: "127.0.0.1",
        port: server.addr.port,
      });
      await server.shutdown();
    });
  }
}

for (const backend of TCP_BACKENDS) {
  Deno.test(`${backend}: a graceful stop tells a protocol with [lastRead] once, unless the peer's end of input did; false has it closed`, async () => {
    const calls: string[] = [];
    let finish = () => {};
    let eofSeen = false;
    const server = serveTcp({ port: 0, backend }, () => {
      let t: Transport;
      let name = "";
      return {
        connectionMade: (x: Transport) => void (t = x),
        dataReceived(d: Uint8Array) {
          name = decode(d);
          t.write(d);
        },
        eofReceived() {
          // Still at work, as the echo with faults is: it closes once done.
          eofSeen = true;
          finish = () => {
            t.write(encode(" done"));
            t.close();
          };
          return true;
        },
        [lastRead]() {
          calls.push(name);
          t.write(encode(" last"));
          return false; // closed by the transport, after what was written
        },
      };
    });
    const quiet = await dial(server.addr);
    const halfClosed = await dial(server.addr);
    try {
      await writeAll(quiet, encode("quiet"));
      assertEquals(decode(await readExactly(quiet, 5)), "quiet");
      await writeAll(halfClosed, encode("half"));
      assertEquals(decode(await readExactly(halfClosed, 4)), "half");
      await halfClosed.closeWrite();
      await waitFor(() => server.counters.bytesReceived === 9, "both reads");
      await waitFor(() => eofSeen, "the end of input");
      const stopping = server.shutdown();
      assertEquals(decode(await readToEnd(quiet)), " last");
      // Told of the end by its peer already: not told again, nor closed under it.
      finish();
      assertEquals(decode(await readToEnd(halfClosed)), " done");
      await stopping;
      assertEquals(calls, ["quiet"]);
    } finally {
      quiet.close();
      halfClosed.close();
    }
  });
}

/** The client backends this process can run. */
const CLIENT_BACKENDS: ("deno" | "epoll")[] = typeof getPoller() === "string"
  ? ["deno"]
  : ["deno", "epoll"];

for (const clientBackend of CLIENT_BACKENDS) {
  Deno.test(`connectTcp (${clientBackend}) runs a client protocol: connectionMade before it resolves, then the echo`, async () => {
    const { server } = recordingServer({ data: (d, t) => t.write(d), eof: () => false });
    const { transport, protocol } = await connectTcp(
      // A small send buffer: the kernel cannot take 1 MiB at once on either backend.
      {
        hostname: "127.0.0.1",
        port: server.addr.port,
        backend: clientBackend,
        sendBufferSize: 65536,
      },
      () => new Recorder(),
    );
    assertEquals(protocol.events, ["made"]);
    const payload = randomBytes(1 << 20, 9);
    transport.write(payload);
    transport.writeEof();
    assertThrows(() => transport.write(encode("x")), TransportClosedError, "writeEof");
    await transport.closed;
    // 1 MiB is past the high mark: writing paused and resumed while echoes came in.
    const flow = protocol.events.filter((e) => e === "pause" || e === "resume");
    assertEquals(flow, ["pause", "resume"]);
    const rest = protocol.events.filter((e) => e !== "pause" && e !== "resume");
    assertEquals(rest.filter((e, i) => e !== rest[i - 1]), ["made", "data", "eof", "lost"]);
    const got = new Uint8Array(payload.length);
    let offset = 0;
    for (const chunk of protocol.received) {
      got.set(chunk, offset);
      offset += chunk.length;
    }
    assertSameBytes(got, payload);
    await server.shutdown();
  });

  Deno.test(`connectTcp (${clientBackend}) to a closed port names the address and keeps no socket`, async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = listener.addr.port;
    listener.close();
    const before = openIoDescriptors();
    const error = await connectTcp({ port, backend: clientBackend }, () => ({})).catch((e) => e);
    assertInstanceOf(error, Deno.errors.ConnectionRefused);
    assert(error.message.includes(`127.0.0.1:${port}`), error.message);
    assertEquals(openIoDescriptors(), before);
  });
}

for (const clientBackend of CLIENT_BACKENDS) {
  Deno.test(`connectTcp (${clientBackend}) resolves a name, and names one that does not resolve`, async () => {
    const { server } = recordingServer({ data: (d, t) => t.write(d), eof: () => false });
    const { transport } = await connectTcp(
      { hostname: "localhost", port: server.addr.port, backend: clientBackend },
      () => ({}),
    );
    assertEquals((transport.getExtraInfo("peername") as Deno.NetAddr).port, server.addr.port);
    transport.close();
    await transport.closed;
    await server.shutdown();
    const error = await connectTcp(
      { hostname: "nosuch.invalid", port: 9, backend: clientBackend },
      () => ({}),
    ).catch((e) => e);
    assertInstanceOf(error, Deno.errors.NotFound);
    assertStringIncludes(error.message, 'Cannot resolve host "nosuch.invalid"');
  });
}

Deno.test("connectTcp refuses an unknown backend before connecting", async () => {
  const error = await connectTcp(
    { port: 9, backend: "io_uring" as "epoll" },
    () => ({}),
  ).catch((e) => e);
  assertInstanceOf(error, TypeError);
  assertStringIncludes(
    error.message,
    'Cannot connect with backend "io_uring": use "deno" or "epoll"',
  );
});
