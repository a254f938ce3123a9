import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import {
  connectUdp,
  connectUdpClient,
  type DatagramTransport,
  serveUdp,
  serveUdpEcho,
  TransportClosedError,
} from "../mod.ts";
import { decode, encode, outcome, waitFor } from "./_helpers.ts";
import { BACKENDS, clogNextSockets, peer, receiveCopy, rerunUnderUnstableNet } from "./_udp.ts";
import { useDatagramLibc } from "../src/udp/_epoll_socket.ts";
import { type LinuxLibc, loadLibc } from "../src/libc/_libc.ts";
import type { DatagramBackend } from "../src/udp/socket.ts";
import { formatAddress } from "../src/_address.ts";

/** A server that answers only from the `answerFrom`-th datagram on: the earlier ones are "lost". */
function lossyServer(backend: DatagramBackend, answerFrom: number) {
  let transport!: DatagramTransport;
  let seen = 0;
  return serveUdp({ backend }, () => ({
    connectionMade: (t) => void (transport = t),
    datagramReceived(data, from) {
      if (++seen >= answerFrom) transport.send(data, from);
    },
  }));
}

for (const backend of BACKENDS) {
  Deno.test(`udp client (${backend}): connectUdp sends to its remote and hears only from it`, async () => {
    const remote = await peer();
    const stranger = await peer();
    const heard: string[] = [];
    const got = Promise.withResolvers<void>();
    const { transport } = await connectUdp(
      { port: remote.addr.port, backend },
      () => ({
        datagramReceived(data: Uint8Array, from: Deno.NetAddr) {
          heard.push(`${decode(data)} from ${from.port}`);
          got.resolve();
        },
      }),
    );
    try {
      assertEquals(transport.getExtraInfo("peername"), remote.addr);
      assertEquals(transport.getExtraInfo("sockname").hostname, "0.0.0.0");
      transport.send(encode("hello"));
      const { data, from } = await receiveCopy(remote);
      assertEquals(decode(data), "hello");
      // Where the remote answers: the client's port, on loopback.
      const client = { transport: "udp" as const, hostname: "127.0.0.1", port: from.port };
      await stranger.send(encode("not for you"), client);
      await remote.send(encode("answer"), client);
      await got.promise;
      assertEquals(heard, [`answer from ${remote.addr.port}`]);
      assertThrows(
        () => transport.send(encode("x"), stranger.addr),
        TypeError,
        `sends to its default remote 127.0.0.1:${remote.addr.port} only`,
      );
      // The default remote, named explicitly, is fine.
      transport.send(encode("again"), remote.addr);
      assertEquals(decode((await receiveCopy(remote)).data), "again");
    } finally {
      transport.close();
      await transport.closed;
      remote.close();
      stranger.close();
    }
  });

  Deno.test(`udp client (${backend}): request gets the echo; host names and IPv6 work`, async () => {
    for (const [serverHost, clientHost] of [["127.0.0.1", "localhost"], ["::1", "::1"]]) {
      await using server = await serveUdpEcho({ backend, hostname: serverHost });
      await using client = await connectUdpClient({
        hostname: clientHost,
        port: server.addr.port,
        backend,
      });
      assertEquals(client.remoteAddr.hostname, serverHost);
      const answer = await client.request(encode(`to ${clientHost}`));
      assertEquals(decode(answer), `to ${clientHost}`);
    }
  });

  Deno.test(`udp client (${backend}): a lost datagram is sent again`, async () => {
    await using server = await lossyServer(backend, 3);
    await using client = await connectUdpClient({ port: server.addr.port, backend });
    const answer = await client.request(encode("third time lucky"), { timeout: 100, retries: 2 });
    assertEquals(decode(answer), "third time lucky");
    assertEquals(server.counters.received, 3);
  });

  Deno.test(`udp client (${backend}): no answer after every attempt is a TimedOut naming the server`, async () => {
    await using server = await lossyServer(backend, Infinity);
    await using client = await connectUdpClient({ port: server.addr.port, backend });
    await assertRejects(
      () => client.request(encode("anyone?"), { timeout: 50, retries: 1 }),
      Deno.errors.TimedOut,
      `Cannot get an answer from udp 127.0.0.1:${server.addr.port}: none came after 2 attempts of 50 ms`,
    );
    assertEquals(server.counters.received, 2);
    await assertRejects(() => client.receive(20), Deno.errors.TimedOut, "within 20 ms");
  });

  Deno.test(`udp client (${backend}): match discards late answers to earlier requests`, async () => {
    const remote = await peer();
    await using client = await connectUdpClient({ port: remote.addr.port, backend });
    try {
      const pending = client.request(encode("second"), {
        match: (answer) => decode(answer) === "second",
      });
      const { from } = await receiveCopy(remote);
      await remote.send(encode("first (late)"), from);
      await remote.send(encode("second"), from);
      assertEquals(decode(await pending), "second");
      assertEquals(client.dropped, 1);
    } finally {
      remote.close();
    }
  });

  Deno.test(`udp client (${backend}): requests take turns; receive sees datagrams; close ends a wait`, async () => {
    await using server = await serveUdpEcho({ backend, prefix: "GOT:" });
    const client = await connectUdpClient({ port: server.addr.port, backend });
    const answers = await Promise.all(
      ["a", "b", "c"].map((text) => client.request(encode(text))),
    );
    assertEquals(answers.map(decode), ["GOT:a", "GOT:b", "GOT:c"]);
    client.send(encode("plain"));
    assertEquals(decode((await client.receive())!), "GOT:plain");
    const waiting = client.receive();
    await client.close();
    assertEquals(await waiting, null);
    assertEquals(await client.receive(), null);
    assertThrows(() => client.send(encode("x")), TransportClosedError);
    await assertRejects(() => client.request(encode("x")), TransportClosedError);
  });
}

for (const backend of BACKENDS) {
  for (const hostname of ["::ffff:127.0.0.1", "127.0.0.01"]) {
    Deno.test(`udp client (${backend}): the first answers come through when the remote was named ${hostname}`, async () => {
      // The kernel writes the source its own way (127.0.0.1, ::ffff:127.0.0.1), not as the
      // remote was named: a source compared as text would be taken for a stranger's.
      const server = await peer("127.0.0.1");
      const heard: string[] = [];
      const { transport } = await connectUdp({ hostname, port: server.addr.port, backend }, () => ({
        datagramReceived(data: Uint8Array, from: Deno.NetAddr) {
          heard.push(`${decode(data)} from ${from.hostname}`);
        },
      }));
      try {
        const remote = transport.getExtraInfo("peername")!.hostname;
        for (const [i, word] of ["one", "two", "three"].entries()) {
          transport.send(encode(word));
          const { data, from } = await receiveCopy(server);
          await server.send(data, from);
          await waitFor(() => heard.length > i, `the answer ${word}`, 2000);
        }
        assertEquals(heard, [`one from ${remote}`, `two from ${remote}`, `three from ${remote}`]);
      } finally {
        transport.close();
        await transport.closed;
        server.close();
      }
    });
  }
}

Deno.test("udp client: bad options and names fail with what to do", async () => {
  await assertRejects(() => connectUdpClient({ port: 0 }), RangeError, "Cannot use port 0:");
  await assertRejects(
    () => connectUdpClient({ port: 9, localPort: 70000 }),
    RangeError,
    "Cannot use localPort 70000:",
  );
  await assertRejects(
    () => connectUdpClient({ hostname: "::zz", port: 9 }),
    TypeError,
    'Cannot use hostname "::zz": it is not an IPv6 address;',
  );
  await using server = await serveUdpEcho();
  await using client = await connectUdpClient({ port: server.addr.port });
  await assertRejects(
    () => client.request(encode("x"), { timeout: 0 }),
    RangeError,
    "Cannot use timeout 0:",
  );
  await assertRejects(
    () => client.request(encode("x"), { retries: -1 }),
    RangeError,
    "Cannot use retries -1:",
  );
  assert(client.addr.port > 0);
});

rerunUnderUnstableNet(import.meta.url, "udp client (deno): a lost datagram is sent again");

Deno.test({
  name:
    "udp client (epoll): a datagram to a port nothing listens on reaches errorReceived as ConnectionRefused",
  ignore: !BACKENDS.includes("epoll"),
  async fn() {
    // A port just freed: loopback answers with ICMP port unreachable, which the kernel
    // reports on a connected socket only.
    const gone = await peer();
    const port = gone.addr.port;
    gone.close();
    await gone.closed;
    const refused = Promise.withResolvers<Error>();
    const { transport } = await connectUdp({ port, backend: "epoll" }, () => ({
      errorReceived: (error: Error) => refused.resolve(error),
    }));
    try {
      transport.send(encode("anyone?"));
      // Bounded, so that a socket that is told nothing fails here instead of hanging.
      assertEquals(await outcome(refused.promise), "resolved");
      const error = await refused.promise;
      assert(error instanceof Deno.errors.ConnectionRefused, String(error));
      assertEquals(
        error.message,
        `Cannot reach udp 127.0.0.1:${port} from ` +
          `${formatAddress(transport.getExtraInfo("sockname"))}: ` +
          "ECONNREFUSED (connection refused, os error 111)",
      );
    } finally {
      transport.close();
      await transport.closed;
    }
  },
});

Deno.test({
  name:
    "udp client (epoll): what a connected client queued while the kernel was full reaches its remote, in order",
  ignore: !BACKENDS.includes("epoll"),
  async fn() {
    const remote = await peer();
    let transport!: DatagramTransport;
    const clogged = clogNextSockets("epoll");
    try {
      ({ transport } = await connectUdp({ port: remote.addr.port, backend: "epoll" }, () => ({
        datagramReceived(data: Uint8Array) {
          // Sent during the socket's batch: gathered, then queued, as the kernel is full.
          transport.send(encode(`${decode(data)}-a`));
          transport.send(encode(`${decode(data)}-b`));
        },
      })));
    } finally {
      clogged[Symbol.dispose]();
    }
    try {
      // Sent outside a batch: queued at once.
      transport.send(encode("1"));
      transport.send(encode("2"));
      const client = {
        transport: "udp" as const,
        hostname: "127.0.0.1",
        port: transport.getExtraInfo("sockname").port,
      };
      await remote.send(encode("x"), client);
      await waitFor(() => transport.getWriteBufferSize() === 1 + 1 + 3 + 3, "four queued");
      clogged.unclog();
      // The queued sends name no address (the socket is connected): they still reach the remote.
      const got: string[] = [];
      for (let i = 0; i < 4; i++) got.push(decode((await receiveCopy(remote)).data));
      assertEquals(got, ["1", "2", "x-a", "x-b"]);
      await waitFor(() => transport.getWriteBufferSize() === 0, "the queue drained");
    } finally {
      transport.close();
      await transport.closed;
      remote.close();
    }
  },
});

Deno.test({
  name:
    "udp client (epoll): a connected client sends without naming its remote, and reads each answer with one recv",
  ignore: !BACKENDS.includes("epoll"),
  async fn() {
    await using server = await serveUdpEcho({ backend: "epoll" });
    // The calls of the client's socket only: the server's was opened before.
    const real = loadLibc() as LinuxLibc;
    const calls = { send: 0, sendto: 0, sendmmsg: 0, recv: 0, recvmmsg: 0, received: 0 };
    useDatagramLibc({
      ...real,
      symbols: {
        ...real.symbols,
        send: (...args) => (calls.send++, real.symbols.send(...args)),
        recv(...args) {
          calls.recv++;
          const n = real.symbols.recv(...args);
          if (n >= 0) calls.received++;
          return n;
        },
      },
      linux: {
        ...real.linux,
        sendto: (...args) => (calls.sendto++, real.linux.sendto(...args)),
        sendmmsg: (...args) => (calls.sendmmsg++, real.linux.sendmmsg(...args)),
        recvmmsg(...args) {
          calls.recvmmsg++;
          const n = real.linux.recvmmsg(...args);
          if (n > 0) calls.received += n;
          return n;
        },
      },
    });
    const ROUND_TRIPS = 300;
    let answers = 0;
    const done = Promise.withResolvers<void>();
    let transport!: DatagramTransport;
    try {
      ({ transport } = await connectUdp({ port: server.addr.port, backend: "epoll" }, () => ({
        datagramReceived(data: Uint8Array) {
          if (++answers === ROUND_TRIPS) return done.resolve();
          transport.send(data); // one answer per batch: sent alone, not with sendmmsg
        },
      })));
    } finally {
      useDatagramLibc(null);
    }
    try {
      transport.send(encode("ping"));
      assertEquals(await outcome(done.promise), "resolved", `${answers} answers`);
      assertEquals(calls.received, ROUND_TRIPS);
      // `send`: the route the kernel looked up at connect, not one per datagram.
      assertEquals([calls.send, calls.sendto, calls.sendmmsg], [ROUND_TRIPS, 0, 0]);
      // With one datagram in flight the answer is never back by the time a read again would
      // look: those reads are given up (reading again each time makes 2 calls per answer).
      // Each answer comes alone, so it is read with recv, which costs less than recvmmsg.
      const reads = calls.recv + calls.recvmmsg;
      assert(reads <= ROUND_TRIPS * 1.2, `${reads} reads for ${ROUND_TRIPS} answers`);
      assert(
        calls.recv >= ROUND_TRIPS * 0.9,
        `${calls.recv} recv and ${calls.recvmmsg} recvmmsg calls for ${ROUND_TRIPS} answers`,
      );
    } finally {
      transport.close();
      await transport.closed;
    }
  },
});

for (const backend of BACKENDS) {
  Deno.test(`udp client (${backend}): a burst to a connected client arrives whole and in order, an empty datagram and the largest included`, async () => {
    const remote = await peer();
    const BURST = 50;
    const sizes: number[] = [];
    const numbers: number[] = [];
    const sources = new Set<Deno.NetAddr>();
    let largestIntact = false;
    let wrongSources = 0;
    const answered = Promise.withResolvers<void>();
    let warmedUp = false;
    const all = Promise.withResolvers<void>();
    const { transport } = await connectUdp({ port: remote.addr.port, backend }, () => ({
      datagramReceived(data: Uint8Array, from: Deno.NetAddr) {
        if (!warmedUp) {
          warmedUp = true;
          return answered.resolve();
        }
        sizes.push(data.length);
        sources.add(from);
        if (
          from.transport !== "udp" || from.hostname !== "127.0.0.1" ||
          from.port !== remote.addr.port
        ) {
          wrongSources++;
        }
        // The object is this protocol's: changing it changes no other datagram's source.
        if (sizes.length === 10) from.port = 1;
        if (sizes.length === 20) from.hostname = "10.0.0.1";
        if (sizes.length === 30) (from as { transport: string }).transport = "tcp";
        if (data.length === 65_507) largestIntact = data.every((b, i) => b === (i * 7) % 251);
        if (data.length === 4) {
          numbers.push(new DataView(data.buffer, data.byteOffset).getUint32(0));
        }
        if (sizes.length === BURST + 2) all.resolve();
      },
    }));
    try {
      transport.send(encode("go"));
      const { from } = await receiveCopy(remote);
      await remote.send(encode("ready"), from);
      // On the epoll backend the read after this answer found the socket's queue empty: from
      // here on its datagrams are known to be the remote's (one object, and a lone one read
      // with recv), not read from each datagram.
      await answered.promise;
      await remote.send(new Uint8Array(0), from);
      await remote.send(Uint8Array.from({ length: 65_507 }, (_, i) => (i * 7) % 251), from);
      for (let i = 0; i < BURST; i++) {
        const numbered = new Uint8Array(4);
        new DataView(numbered.buffer).setUint32(0, i);
        await remote.send(numbered, from);
      }
      assertEquals(await outcome(all.promise), "resolved", `${sizes.length} datagrams`);
      assertEquals(sizes.slice(0, 2), [0, 65_507]);
      assert(largestIntact, "the 65,507-byte datagram differs from what was sent");
      assertEquals(numbers, Array.from({ length: BURST }, (_, i) => i));
      assertEquals(wrongSources, 0);
      if (backend === "epoll") {
        // One object for the remote until the protocol changed it, then another, each time.
        assertEquals(sources.size, 4);
      }
    } finally {
      transport.close();
      await transport.closed;
      remote.close();
    }
  });
}
