import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import {
  connectUdp,
  type DatagramProtocol,
  type DatagramTransport,
  MAX_DATAGRAM_SIZE,
  MAX_DATAGRAM_SIZE_IPV6,
  serveUdp,
} from "../src/udp/mod.ts";
import { serveUdpEcho, TransportClosedError } from "../mod.ts";
import { decode, encode, randomBytes } from "./_helpers.ts";
import { hasUnstableNet } from "../src/_unstable.ts";
import { openDatagramSocket } from "../src/udp/socket.ts";
import {
  ask,
  BACKENDS,
  clogNextSockets,
  peer,
  receiveCopy,
  refuseInBatch,
  rerunUnderUnstableNet,
} from "./_udp.ts";

/** A protocol that records its callbacks and echoes each datagram to its source. */
class Recorder implements DatagramProtocol {
  transport!: DatagramTransport;
  readonly events: string[] = [];
  readonly errors: Error[] = [];
  readonly lost = Promise.withResolvers<Error | undefined>();
  echo = true;

  connectionMade(transport: DatagramTransport): void {
    this.transport = transport;
    this.events.push("made");
  }
  datagramReceived(data: Uint8Array, from: Deno.NetAddr): void {
    this.events.push(`datagram ${data.length} from ${from.port}`);
    if (this.echo) this.transport.send(data, from);
  }
  errorReceived(error: Error): void {
    this.events.push("error");
    this.errors.push(error);
  }
  connectionLost(error?: Error): void {
    this.events.push("lost");
    this.lost.resolve(error);
  }
}

/** The next datagram on `socket`, or `null` when none comes within `ms` (then `socket` is closed). */
async function receiveWithin(
  socket: Awaited<ReturnType<typeof peer>>,
  ms: number,
): Promise<{ data: Uint8Array } | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const quiet = new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), ms));
  const next = receiveCopy(socket);
  const first = await Promise.race([next, quiet]);
  clearTimeout(timer);
  if (first === null) {
    socket.close(); // ends the pending receive, which then rejects
    await next.catch(() => {});
  }
  return first;
}

for (const backend of BACKENDS) {
  Deno.test(`udp protocol (${backend}): every datagram echoed whole, up to 65,507 bytes, in order`, async () => {
    const recorder = new Recorder();
    await using server = await serveUdp({ backend }, () => recorder);
    assertEquals(server.backend, backend);
    assertEquals(server.addr.hostname, "127.0.0.1");
    const client = await peer();
    try {
      for (const size of [0, 1, 100, 1000, 8192, MAX_DATAGRAM_SIZE]) {
        const data = randomBytes(size, size + 1);
        assertEquals(await ask(client, server.addr, data), data, `${size} bytes`);
      }
      // A burst, answered in order.
      for (let i = 0; i < 50; i++) await client.send(encode(`n${i}`), server.addr);
      for (let i = 0; i < 50; i++) assertEquals(decode((await receiveCopy(client)).data), `n${i}`);
      assertEquals(recorder.events[0], "made");
      assertEquals(recorder.events[1], `datagram 0 from ${client.addr.port}`);
      assertEquals(server.counters.received, 56);
      assertEquals(server.counters.sent, 56);
      assertEquals(server.counters.dropped, 0);
    } finally {
      client.close();
    }
    await server.shutdown();
    assertEquals(await recorder.lost.promise, undefined);
    assertEquals(recorder.events.at(-1), "lost");
    assertEquals(recorder.events.filter((e) => e === "lost").length, 1);
  });

  Deno.test(`udp protocol (${backend}): IPv6, up to 65,527 bytes`, async () => {
    await using server = await serveUdp({ backend, hostname: "::1" }, () => new Recorder());
    const client = await peer("::1");
    try {
      assertEquals(server.addr.hostname, "::1");
      const data = randomBytes(MAX_DATAGRAM_SIZE_IPV6, 6);
      assertEquals(await ask(client, server.addr, data), data);
    } finally {
      client.close();
    }
  });

  Deno.test(`udp protocol (${backend}): close sends every queued datagram first`, async () => {
    const client = await peer();
    let transport!: DatagramTransport;
    const clogged = clogNextSockets(backend);
    const server = await serveUdp({ backend }, () => ({
      connectionMade: (t) => void (transport = t),
    }));
    clogged[Symbol.dispose]();
    try {
      for (let i = 0; i < 200; i++) transport.send(encode(`queued ${i}`), client.addr);
      assert(transport.getWriteBufferSize() > 0, "nothing was queued");
      transport.close();
      assert(transport.isClosing());
      assertThrows(
        () => transport.send(encode("late"), client.addr),
        TransportClosedError,
        "close() was called",
      );
      clogged.unclog();
      await server.finished;
      for (let i = 0; i < 200; i++) {
        assertEquals(decode((await receiveCopy(client)).data), `queued ${i}`);
      }
      assertEquals(transport.getWriteBufferSize(), 0);
      assertEquals(server.counters.sent, 200);
    } finally {
      client.close();
      await server.shutdown();
    }
  });

  Deno.test(`udp protocol (${backend}): bad sends throw at once with what to do`, async () => {
    const recorder = new Recorder();
    await using server = await serveUdp({ backend }, () => recorder);
    const { transport } = recorder;
    const to = { transport: "udp" as const, hostname: "127.0.0.1", port: 9 };
    assertThrows(
      () => transport.send(encode("x")),
      TypeError,
      "Cannot send a datagram without an address: this socket has no default remote;",
    );
    assertThrows(
      () => transport.send(new Uint8Array(MAX_DATAGRAM_SIZE + 1), to),
      RangeError,
      "UDP carries at most 65507 bytes over IPv4",
    );
    assertThrows(
      () => transport.send(encode("x"), { ...to, port: 0 }),
      TypeError,
      "with a port from 1 to 65535",
    );
    assertThrows(
      () => transport.send("text" as unknown as Uint8Array, to),
      TypeError,
      "Cannot send a datagram of type string: it must be a Uint8Array",
    );
    assertEquals(transport.getWriteBufferSize(), 0);
    assertEquals(server.counters.sent, 0);
    // The address the message shows is one the socket could send to.
    const six = new Recorder();
    await using _six = await serveUdp({ backend, hostname: "::1" }, () => six);
    assertThrows(
      () => six.transport.send(encode("x")),
      TypeError,
      'pass one: send(data, { transport: "udp", hostname: "::1", port: 8888 })',
    );
  });

  Deno.test(`udp protocol (${backend}): a failed send goes to errorReceived and the socket goes on`, async () => {
    const recorder = new Recorder();
    await using server = await serveUdp({ backend }, () => recorder);
    // An IPv4 socket cannot reach an IPv6 address: the send fails after it is queued.
    recorder.transport.send(encode("nowhere"), { transport: "udp", hostname: "::1", port: 9 });
    const client = await peer();
    try {
      assertEquals(decode(await ask(client, server.addr, encode("still here"))), "still here");
      assertEquals(recorder.errors.length, 1);
      assertStringIncludes(recorder.errors[0].message, "from the IPv4 socket");
      assertEquals(server.counters.sendErrors, 1);
      assert(!recorder.transport.isClosing());
    } finally {
      client.close();
    }
  });

  Deno.test(`udp protocol (${backend}): a throwing datagramReceived loses that datagram only`, async () => {
    let transport!: DatagramTransport;
    await using server = await serveUdp({ backend }, () => ({
      connectionMade: (t) => void (transport = t),
      datagramReceived(data, from) {
        if (decode(data) === "boom") throw new Error("boom");
        transport.send(data, from);
      },
    }));
    const client = await peer();
    try {
      await client.send(encode("boom"), server.addr);
      assertEquals(decode(await ask(client, server.addr, encode("after"))), "after");
      assertEquals(server.counters.received, 2);
      assertEquals(server.counters.sent, 1);
    } finally {
      client.close();
    }
  });

  Deno.test(`udp protocol (${backend}): a throwing connectionMade closes the socket with the error`, async () => {
    const lost = Promise.withResolvers<Error | undefined>();
    const server = await serveUdp({ backend }, () => ({
      connectionMade() {
        throw new Error("cannot start");
      },
      connectionLost: (error) => lost.resolve(error),
    }));
    assertEquals((await lost.promise)?.message, "cannot start");
    await server.finished;
    // Shutting down a server whose socket already closed resolves at once (no timer left behind).
    await server.shutdown();
    // The port is free again.
    const again = await serveUdp({ backend, port: server.addr.port }, () => ({}));
    await again.shutdown();
  });

  Deno.test(`udp protocol (${backend}): an async connectionMade that rejects closes the socket with the error`, async () => {
    const lost = Promise.withResolvers<Error | undefined>();
    const server = await serveUdp({ backend }, () => ({
      async connectionMade() {
        await Promise.resolve();
        throw new Error("cannot start later");
      },
      connectionLost: (error) => lost.resolve(error),
    }));
    assertEquals((await lost.promise)?.message, "cannot start later");
    await server.finished;
    await server.shutdown();
  });

  Deno.test(`udp protocol (${backend}): pauseWriting past the high mark, resumeWriting once drained`, async () => {
    const client = await peer();
    const calls: string[] = [];
    const resumed = Promise.withResolvers<void>();
    let transport!: DatagramTransport;
    const clogged = clogNextSockets(backend);
    await using _server = await serveUdp({ backend, highWaterMark: 4000 }, () => ({
      connectionMade: (t) => void (transport = t),
      pauseWriting: () => void calls.push("pause"),
      resumeWriting() {
        calls.push("resume");
        resumed.resolve();
      },
    }));
    clogged[Symbol.dispose]();
    try {
      for (let i = 0; i < 5; i++) transport.send(new Uint8Array(1000), client.addr);
      assertEquals(calls, ["pause"]);
      clogged.unclog();
      await resumed.promise;
      assertEquals(calls, ["pause", "resume"]);
      for (let i = 0; i < 5; i++) assertEquals((await receiveCopy(client)).data.length, 1000);
    } finally {
      client.close();
    }
  });

  Deno.test(`udp protocol (${backend}): nothing is received while the send queue is past its high mark`, async () => {
    const client = await peer();
    const events: string[] = [];
    const got = Promise.withResolvers<void>();
    let transport!: DatagramTransport;
    const clogged = clogNextSockets(backend);
    await using server = await serveUdp({ backend, highWaterMark: 4000 }, () => ({
      connectionMade: (t) => void (transport = t),
      datagramReceived(data, from) {
        events.push(`received ${decode(data)}`);
        // The first datagram makes 200 KB of answers: far past the high mark.
        if (decode(data) === "first") {
          for (let i = 0; i < 200; i++) transport.send(new Uint8Array(1000), from);
        }
        if (decode(data) === "second") got.resolve();
      },
      pauseWriting() {
        events.push("pause");
        // The kernel has room again a little later (on epoll, where it had none).
        setTimeout(() => clogged.unclog(), 50);
      },
      resumeWriting: () => void events.push("resume"),
    }));
    clogged[Symbol.dispose]();
    try {
      // Both arrive at once; the second must wait until the answers to the first drained.
      await client.send(encode("first"), server.addr);
      await client.send(encode("second"), server.addr);
      await got.promise;
      assertEquals(events, ["received first", "pause", "resume", "received second"]);
    } finally {
      client.close();
    }
  });

  Deno.test({
    name: `udp protocol (${backend}): no read follows a batch that paused writing`,
    // Needs a peer whose send reaches the kernel before the batch ends: an epoll socket's.
    ignore: backend !== "epoll",
    async fn() {
      const sender = await openDatagramSocket({ backend: "epoll" });
      const events: string[] = [];
      const got = Promise.withResolvers<void>();
      let transport!: DatagramTransport;
      const clogged = clogNextSockets(backend, (n) => events.push(`read ${n}`));
      await using server = await serveUdp({ backend, highWaterMark: 4000 }, () => ({
        connectionMade: (t) => void (transport = t),
        datagramReceived(data, from) {
          events.push(`received ${decode(data)}`);
          if (decode(data) === "first") {
            for (let i = 0; i < 200; i++) transport.send(new Uint8Array(1000), from);
            // Past the high mark now; "second" is in the kernel before this batch ends.
            void sender.send(encode("second"), server.addr);
          }
          if (decode(data) === "second") got.resolve();
        },
        pauseWriting() {
          events.push("pause");
          setTimeout(() => clogged.unclog(), 50);
        },
        resumeWriting: () => void events.push("resume"),
      }));
      clogged[Symbol.dispose]();
      try {
        await sender.send(encode("first"), server.addr);
        await got.promise;
        assertEquals(events, [
          "read 1",
          "received first",
          "pause",
          "resume",
          "read 1",
          "received second",
        ]);
      } finally {
        sender.close();
      }
    },
  });

  Deno.test({
    name:
      `udp protocol (${backend}): a read past the poller's turn budget waits for promise callbacks`,
    // Reads again on one readiness event are the epoll backend's; the kernel must hold more
    // than the turn's 256 KiB, which a receive buffer capped by a small rmem_max cannot.
    ignore: backend !== "epoll" ||
      Number(Deno.readTextFileSync("/proc/sys/net/core/rmem_max")) < 4 << 20,
    async fn() {
      const COUNT = 150;
      const sender = await openDatagramSocket({ backend: "epoll" });
      let received = 0;
      let beforeCallbacks = -1;
      const all = Promise.withResolvers<void>();
      await using server = await serveUdp(
        { backend, receiveBufferSize: 4 << 20 },
        () => ({
          datagramReceived() {
            if (received++ === 0) void Promise.resolve().then(() => beforeCallbacks = received);
            if (received === COUNT) all.resolve();
          },
        }),
      );
      try {
        // All in the kernel before the server reads any: 2.4 MB, over nine turns' worth.
        for (let i = 0; i < COUNT; i++) void sender.send(new Uint8Array(16_384), server.addr);
        await all.promise;
        // One batch of 64 (1 MiB, past the budget), then promise callbacks, then the rest.
        assertEquals(beforeCallbacks, 64);
      } finally {
        sender.close();
      }
    },
  });

  Deno.test(`udp protocol (${backend}): a datagram sent from a buffer overwritten right after send() goes out as it was`, async () => {
    const COUNT = 200;
    const client = await peer();
    await using _server = await serveUdp({ port: 0, backend }, () => ({
      connectionMade(t) {
        const scratch = new Uint8Array(512);
        for (let i = 0; i < COUNT; i++) {
          scratch.fill(i & 0xff);
          t.send(scratch, client.addr);
        }
      },
    }));
    // UDP may drop some (the kernel, when the peer reads late): check those that come.
    const seen: number[] = [];
    try {
      for (let received; (received = await receiveWithin(client, 500)) !== null;) {
        const data = received.data;
        assert(data.every((byte) => byte === data[0]), "a datagram mixes two sends' bytes");
        seen.push(data[0]);
        if (seen.length === COUNT) break;
      }
    } finally {
      client.close();
    }
    assert(seen.length >= COUNT / 4, `only ${seen.length} of ${COUNT} datagrams came`);
    assertEquals(new Set(seen).size, seen.length, "two datagrams hold the same send's bytes");
  });

  Deno.test(`udp protocol (${backend}): an answer sent just before close() inside datagramReceived goes out`, async () => {
    const client = await peer();
    const server = await serveUdp({ backend }, () => {
      let transport: DatagramTransport;
      return {
        connectionMade: (t) => void (transport = t),
        datagramReceived(data, from) {
          transport.send(data, from);
          transport.close();
        },
      };
    });
    try {
      assertEquals(decode(await ask(client, server.addr, encode("last words"))), "last words");
      await server.finished;
      assertEquals(server.counters.sent, 1);
    } finally {
      client.close();
      await server.shutdown();
    }
  });

  Deno.test(`udp protocol (${backend}): close() in connectionMade still sends what was queued`, async () => {
    const client = await peer();
    const clogged = clogNextSockets(backend);
    const server = await serveUdp({ backend }, () => ({
      connectionMade(t) {
        for (let i = 0; i < 10; i++) t.send(encode(`early ${i}`), client.addr);
        t.close();
      },
    }));
    clogged[Symbol.dispose]();
    try {
      clogged.unclog();
      await server.finished;
      for (let i = 0; i < 10; i++) {
        assertEquals(decode((await receiveCopy(client)).data), `early ${i}`);
      }
    } finally {
      client.close();
      await server.shutdown();
    }
  });

  Deno.test(`udp protocol (${backend}): answers sent from one reused buffer during a burst each go out as they were`, async () => {
    // Echoes every datagram through the same scratch buffer, overwritten by the next one: on
    // epoll the burst arrives in a few recvmmsg batches whose answers leave together in sendmmsg
    // after the batch, so each must have been copied at send().
    const COUNT = 50;
    const client = await peer();
    let transport!: DatagramTransport;
    const scratch = new Uint8Array(2048);
    await using server = await serveUdp({ backend }, () => ({
      connectionMade: (t) => void (transport = t),
      datagramReceived(data, from) {
        scratch.set(data);
        transport.send(scratch.subarray(0, data.length), from);
        scratch.fill(0xee); // gone before any batch ends
      },
    }));
    const sent = new Set<string>();
    try {
      for (let i = 0; i < COUNT; i++) {
        const text = `datagram ${i} `.repeat(1 + (i % 7));
        sent.add(text);
        await client.send(encode(text), server.addr);
      }
      const got = new Set<string>();
      for (let received; got.size < COUNT && (received = await receiveWithin(client, 1000));) {
        got.add(decode(received.data));
      }
      // UDP may drop some under a burst; every one that came is one that was sent.
      assert(got.size >= COUNT / 2, `only ${got.size} of ${COUNT} answers came`);
      for (const text of got) assert(sent.has(text), `an answer no one sent: ${text}`);
    } finally {
      client.close();
    }
  });

  Deno.test({
    name:
      `udp protocol (${backend}): an abort from errorReceived during a batch's sends sends no datagram twice`,
    ignore: backend !== "epoll",
    async fn() {
      // The batch's three answers: the kernel takes the first, refuses the second (EPERM, as a
      // firewall would); the protocol aborts in errorReceived, and the socket's close sends what
      // is left of the batch, which was sent as far as the protocol knows.
      const refusing = refuseInBatch(1);
      let transport!: DatagramTransport;
      const errors: string[] = [];
      const server = await serveUdp({ backend }, () => ({
        connectionMade: (t: DatagramTransport) => void (transport = t),
        datagramReceived: (data: Uint8Array, from: Deno.NetAddr) => transport.send(data, from),
        errorReceived(error: Error) {
          errors.push(error.message);
          transport.abort();
        },
      }));
      refusing[Symbol.dispose]();
      // Its sends reach the kernel before they return: the server reads the three as one batch.
      const client = await openDatagramSocket({ hostname: "127.0.0.1", port: 0, backend });
      const marker = await peer();
      try {
        for (const text of ["a", "b", "c"]) await client.send(encode(text), server.addr);
        await server.finished;
        // Loopback queues in order: whatever the server sent is before the marker's "end".
        await marker.send(encode("end"), client.addr);
        const got: string[] = [];
        for (let text = ""; text !== "end";) {
          got.push(text = decode((await receiveCopy(client)).data));
        }
        assertEquals(got, ["a", "c", "end"]);
        assertEquals(errors.length, 1, errors.join("; "));
        assertStringIncludes(errors[0], "send to udp");
      } finally {
        client.close();
        marker.close();
        await server.shutdown();
      }
    },
  });

  Deno.test({
    name:
      `udp protocol (${backend}): a send from errorReceived while a full batch is flushed sends no datagram twice`,
    ignore: backend !== "epoll",
    async fn() {
      // 40 datagrams in one batch, each answered twice: the 65th answer finds the batch full and
      // flushes it. The kernel takes two, refuses the third (EPERM); the protocol's
      // errorReceived sends "err", which finds the batch still full and flushes the rest. The
      // first flush must then stop: the rest is out.
      const refusing = refuseInBatch(2);
      let transport!: DatagramTransport;
      let peerAddress!: Deno.NetAddr;
      const server = await serveUdp({ backend }, () => ({
        connectionMade: (t: DatagramTransport) => void (transport = t),
        datagramReceived(data: Uint8Array, from: Deno.NetAddr) {
          peerAddress = from;
          transport.send(data, from);
          transport.send(data, from);
        },
        errorReceived: () => transport.send(encode("err"), peerAddress),
      }));
      refusing[Symbol.dispose]();
      const client = await openDatagramSocket({ hostname: "127.0.0.1", port: 0, backend });
      const marker = await peer();
      try {
        // Its sends reach the kernel before they return: the server reads the 40 as one batch.
        await Promise.all(
          Array.from({ length: 40 }, (_, i) => client.send(encode(`d${i}`), server.addr)),
        );
        const counts = new Map<string, number>();
        const count = (text: string) => counts.set(text, (counts.get(text) ?? 0) + 1);
        // The batch's answers all went out in the server's one turn, which the first one ends.
        count(decode((await receiveCopy(client)).data));
        await marker.send(encode("end"), client.addr);
        for (let text = ""; text !== "end";) count(text = decode((await receiveCopy(client)).data));
        const expected = new Map<string, number>([["err", 1], ["end", 1]]);
        for (let i = 0; i < 40; i++) expected.set(`d${i}`, i === 1 ? 1 : 2); // d1's first refused
        assertEquals(counts, expected);
      } finally {
        client.close();
        marker.close();
        await server.shutdown();
      }
    },
  });

  Deno.test(`udp protocol (${backend}): a relay forwards each datagram to another socket and back, then overwrites it`, async () => {
    // The lent view goes out on another socket than the one that received it, during the
    // receiving socket's batch, and is overwritten right after: what the echo server behind
    // the relay gets, and what the client gets back, must be the bytes as they were.
    const COUNT = 40;
    await using echo = await serveUdpEcho({ backend });
    let front!: DatagramTransport;
    let client: Deno.NetAddr | null = null;
    const back = await connectUdp({ port: echo.addr.port, backend }, () => ({
      datagramReceived(data: Uint8Array) {
        front.send(data, client!);
        data.fill(0xee);
      },
    }));
    await using relay = await serveUdp({ backend }, () => ({
      connectionMade: (t: DatagramTransport) => void (front = t),
      datagramReceived(data: Uint8Array, from: Deno.NetAddr) {
        client = from;
        back.transport.send(data);
        data.fill(0xee);
      },
    }));
    const peerSocket = await peer();
    const datagram = (i: number) => {
      const data = randomBytes(1 + ((i * 379) % 1500), i + 7);
      data[0] = i;
      return data;
    };
    try {
      await Promise.all(
        Array.from({ length: COUNT }, (_, i) => peerSocket.send(datagram(i), relay.addr)),
      );
      const seen = new Set<number>();
      for (let received; seen.size < COUNT && (received = await receiveWithin(peerSocket, 1000));) {
        assertEquals(received.data, datagram(received.data[0]), `datagram ${received.data[0]}`);
        seen.add(received.data[0]);
      }
      // UDP may drop some under a burst; every one that came back was whole.
      assert(seen.size >= COUNT / 2, `only ${seen.size} of ${COUNT} came back`);
    } finally {
      peerSocket.close();
      back.transport.close();
      await back.transport.closed;
    }
  });

  Deno.test(`udp protocol (${backend}): getExtraInfo, and socket options read back from the kernel`, async () => {
    const recorder = new Recorder();
    const server = await serveUdp(
      { backend, receiveBufferSize: 65536, sendBufferSize: 32768 },
      () => recorder,
    );
    const { transport } = recorder;
    assertEquals(transport.getExtraInfo("sockname"), server.addr);
    assertEquals(transport.getExtraInfo("peername"), undefined);
    const values = transport.getExtraInfo("socketOptions");
    // Linux keeps (and reports) twice what was asked for.
    const factor = Deno.build.os === "linux" ? 2 : 1;
    assertEquals(values.receiveBufferSize, 65536 * factor);
    assertEquals(values.sendBufferSize, 32768 * factor);
    assertEquals(values.reuseAddress, false);
    assertEquals(values.noDelay, undefined, "no TCP options on a UDP socket");
    assertEquals(server.getSocketOptions(), values);
    assertThrows(
      () => transport.getExtraInfo("socket" as "sockname"),
      TypeError,
      'use "sockname", "peername" or "socketOptions"',
    );
    await server.shutdown();
    assertThrows(() => transport.getExtraInfo("socketOptions"), Deno.errors.BadResource, "closed");
    assertThrows(() => server.getSocketOptions(), Deno.errors.BadResource, "shut down");
  });

  Deno.test(`udp protocol (${backend}): reuseAddress lets a second socket bind the port`, async () => {
    await using first = await serveUdp({ backend, reuseAddress: true }, () => ({}));
    assertEquals(first.getSocketOptions().reuseAddress, true);
    await using second = await serveUdp(
      { backend, reuseAddress: true, port: first.addr.port },
      () => ({}),
    );
    assertEquals(second.addr.port, first.addr.port);
    // Without it, the port is taken.
    await assertRejects(
      () => serveUdp({ backend, port: first.addr.port }, () => ({})),
      Deno.errors.AddrInUse,
      `Cannot bind udp 127.0.0.1:${first.addr.port}: the address is already in use;`,
    );
  });

  Deno.test(`udp protocol (${backend}): shutdown twice drops what is still queued`, async () => {
    let transport!: DatagramTransport;
    const clogged = clogNextSockets(backend);
    const server = await serveUdp({ backend }, () => ({
      connectionMade: (t) => void (transport = t),
    }));
    clogged[Symbol.dispose]();
    const client = await peer();
    try {
      for (let i = 0; i < 100; i++) transport.send(new Uint8Array(1000), client.addr);
      const first = server.shutdown();
      await server.shutdown(); // at once: the queue is dropped, not sent
      await first;
      assertEquals(transport.getWriteBufferSize(), 0);
      assert(transport.isClosing());
      // At most the one datagram already handed to the socket went out.
      assert(server.counters.sent <= 1, `${server.counters.sent} datagrams sent after an abort`);
    } finally {
      client.close();
    }
  });
}

Deno.test("udp protocol: invalid options fail before any socket is bound", async () => {
  await assertRejects(
    () => serveUdp({ port: 70000 }, () => ({})),
    RangeError,
    "Cannot use port 70000",
  );
  await assertRejects(
    () => serveUdp({ receiveBufferSize: 0 }, () => ({})),
    RangeError,
    "Cannot use receiveBufferSize 0: it must be a whole number from 1 to 1073741824",
  );
  await assertRejects(
    () => serveUdp({ rateLimit: { perSecond: 0 } }, () => ({})),
    RangeError,
    "Cannot use rateLimit.perSecond 0:",
  );
  await assertRejects(
    () => serveUdp({ highWaterMark: 10, lowWaterMark: 20 }, () => ({})),
    RangeError,
    "low water mark 20 is above high water mark 10",
  );
  await assertRejects(
    () => serveUdp({}, "nope" as unknown as () => DatagramProtocol),
    TypeError,
    "it must be a function that returns a DatagramProtocol",
  );
});

Deno.test({
  name: "udp protocol: the deno backend without --unstable-net names the flag",
  ignore: hasUnstableNet(),
  async fn() {
    await assertRejects(
      () => serveUdp({ backend: "deno" }, () => ({})),
      Deno.errors.NotSupported,
      "needs Deno's --unstable-net flag",
    );
  },
});

rerunUnderUnstableNet(import.meta.url, "udp protocol (deno): every datagram echoed whole");
