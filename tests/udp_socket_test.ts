import { assert, assertEquals, assertRejects } from "@std/assert";
import {
  MAX_DATAGRAM_SIZE,
  MAX_DATAGRAM_SIZE_IPV6,
  openDatagramSocket,
} from "../src/udp/socket.ts";
import { decode, encode, randomBytes } from "./_helpers.ts";
import { getSocketOptions } from "../src/tcp/mod.ts";
import { hasUnstableNet } from "../src/_unstable.ts";
import { BACKENDS, peer, receiveCopy, rerunUnderUnstableNet } from "./_udp.ts";
import { EpollDatagramSocket } from "../src/udp/_epoll_socket.ts";

for (const backend of BACKENDS) {
  Deno.test(`udp socket (${backend}): datagrams both ways, with their sources, up to 65,507 bytes`, async () => {
    const a = await openDatagramSocket({ backend });
    const b = await openDatagramSocket({ backend });
    try {
      assertEquals(a.backend, backend);
      assert(a.addr.port > 0 && a.addr.port !== b.addr.port);
      for (const size of [0, 1, 1000, MAX_DATAGRAM_SIZE]) {
        const data = randomBytes(size, size);
        await a.send(data, b.addr);
        const got = await receiveCopy(b);
        assertEquals(got.data, data, `${size} bytes`);
        assertEquals(got.from, a.addr);
      }
      await b.send(new Uint8Array([1, 2, 3]), a.addr);
      assertEquals((await receiveCopy(a)).data, new Uint8Array([1, 2, 3]));
    } finally {
      a.close();
      b.close();
    }
  });

  Deno.test(`udp socket (${backend}): IPv6, up to its 65,527-byte maximum`, async () => {
    const a = await openDatagramSocket({ backend, hostname: "::1" });
    const b = await openDatagramSocket({ backend, hostname: "::1" });
    try {
      assertEquals(a.addr.hostname, "::1");
      await a.send(new TextEncoder().encode("six"), b.addr);
      const got = await receiveCopy(b);
      assertEquals(new TextDecoder().decode(got.data), "six");
      assertEquals(got.from, a.addr);
      const largest = randomBytes(MAX_DATAGRAM_SIZE_IPV6, 6);
      await a.send(largest, b.addr);
      assertEquals((await receiveCopy(b)).data, largest);
      await assertRejects(
        () => a.send(new Uint8Array(MAX_DATAGRAM_SIZE_IPV6 + 1), b.addr),
        RangeError,
        `Cannot send a datagram of 65528 bytes to udp [::1]:${b.addr.port}: ` +
          "UDP carries at most 65527 bytes over IPv6;",
      );
    } finally {
      a.close();
      b.close();
    }
  });

  Deno.test(`udp socket (${backend}): an oversized datagram is refused with a clear error`, async () => {
    const a = await openDatagramSocket({ backend });
    try {
      await assertRejects(
        () => a.send(new Uint8Array(MAX_DATAGRAM_SIZE + 1), a.addr),
        RangeError,
        `Cannot send a datagram of 65508 bytes to udp 127.0.0.1:${a.addr.port}: ` +
          "UDP carries at most 65507 bytes over IPv4; split the data or use TCP",
      );
    } finally {
      a.close();
    }
  });

  Deno.test(`udp socket (${backend}): close ends a pending receive; a taken port is named`, async () => {
    const a = await openDatagramSocket({ backend });
    const pending = a.receive();
    a.close();
    a.close();
    assertEquals(await pending, null);
    assertEquals(await a.receive(), null);

    const b = await openDatagramSocket({ backend });
    try {
      await assertRejects(
        () => openDatagramSocket({ backend, port: b.addr.port }),
        Deno.errors.AddrInUse,
        `Cannot bind udp 127.0.0.1:${b.addr.port}: the address is already in use;`,
      );
    } finally {
      b.close();
    }
    // Once closed resolves, the port is free again.
    await b.closed;
    const again = await openDatagramSocket({ backend, port: b.addr.port });
    again.close();
    await again.closed;
  });

  Deno.test(`udp socket (${backend}): await using closes the socket and frees its port`, async () => {
    let port = 0;
    {
      await using socket = await openDatagramSocket({ backend });
      port = socket.addr.port;
    }
    // Disposal has waited for the release: the same port binds again at once.
    const again = await openDatagramSocket({ backend, port });
    again.close();
    await again.closed;
  });
}

for (const backend of BACKENDS) {
  Deno.test(`udp socket (${backend}): for await yields each datagram until the socket closes`, async () => {
    const socket = await openDatagramSocket({ backend });
    const sender = await openDatagramSocket({ backend });
    try {
      for (const text of ["one", "two", "three"]) await sender.send(encode(text), socket.addr);
      const seen: string[] = [];
      for await (const [data, from] of socket) {
        seen.push(`${decode(data)} from ${from.port}`);
        if (seen.length === 3) socket.close();
      }
      const port = sender.addr.port;
      assertEquals(seen, [`one from ${port}`, `two from ${port}`, `three from ${port}`]);
      // A closed socket's iteration ends at once.
      for await (const _ of socket) throw new Error("a closed socket yielded a datagram");
    } finally {
      socket.close();
      sender.close();
    }
  });

  Deno.test(`udp socket (${backend}): buffer sizes set at open are read back from the kernel`, async () => {
    const socket = await openDatagramSocket({
      backend,
      receiveBufferSize: 100_000,
      sendBufferSize: 50_000,
      reuseAddress: true,
    });
    try {
      const values = getSocketOptions(socket);
      const factor = Deno.build.os === "linux" ? 2 : 1;
      assertEquals(values.receiveBufferSize, 100_000 * factor);
      assertEquals(values.sendBufferSize, 50_000 * factor);
      assertEquals(values.reuseAddress, true);
      assertEquals(values.noDelay, undefined);
    } finally {
      socket.close();
    }
    await assertRejects(
      () => openDatagramSocket({ backend, sendBufferSize: 0 }),
      RangeError,
      "Cannot use sendBufferSize 0:",
    );
    await assertRejects(
      () => openDatagramSocket({ backend: "bsd" as "node" }),
      RangeError,
      'Cannot use backend "bsd": it must be "epoll", "deno" or "node"',
    );
  });
}

Deno.test("udp socket (epoll): datagrams queued before a connect keep their own sources", async () => {
  const socket = await openDatagramSocket({ backend: "epoll" }) as EpollDatagramSocket;
  assert(socket instanceof EpollDatagramSocket);
  const [stranger, first, second] = [await peer(), await peer(), await peer()];
  const heard = async () => {
    const { data, from } = await receiveCopy(socket);
    return `${decode(data)} from ${from.port}`;
  };
  try {
    // connect(2) leaves the receive queue as it is: these are read with their real sources,
    // not taken for the remote's (connectUdp's filter drops them by source).
    await stranger.send(encode("early"), socket.addr);
    socket.connect(first.addr);
    await first.send(encode("one"), socket.addr);
    assertEquals(await heard(), `early from ${stranger.addr.port}`);
    assertEquals(await heard(), `one from ${first.addr.port}`);
    // The queue was found empty: from here on, what comes is the remote's.
    await first.send(encode("two"), socket.addr);
    assertEquals(await heard(), `two from ${first.addr.port}`);
    // Connected elsewhere: what the first remote sent before is still its own.
    await first.send(encode("late"), socket.addr);
    socket.connect(second.addr);
    await second.send(encode("three"), socket.addr);
    assertEquals(await heard(), `late from ${first.addr.port}`);
    assertEquals(await heard(), `three from ${second.addr.port}`);
  } finally {
    socket.close();
    stranger.close();
    first.close();
    second.close();
  }
});

for (const connected of [false, true]) {
  Deno.test(`udp socket (epoll${connected ? ", connected" : ""}): a source its receiver changed is not handed out again`, async () => {
    const socket = await openDatagramSocket({ backend: "epoll" }) as EpollDatagramSocket;
    const sender = await peer();
    try {
      if (connected) socket.connect(sender.addr);
      await sender.send(encode("first"), socket.addr);
      await receiveCopy(socket);
      // Connected, the read after the first found the queue empty: from here on, the source of
      // every datagram is the remote, not read.
      await sender.send(encode("second"), socket.addr);
      let previous = (await receiveCopy(socket)).from;
      assertEquals(previous, sender.addr);
      const changes = [
        (from: Deno.NetAddr) => from.port = 1,
        (from: Deno.NetAddr) => from.hostname = "10.0.0.1",
        (from: Deno.NetAddr) => (from as { transport: string }).transport = "tcp",
        null,
      ];
      for (const change of changes) {
        change?.(previous);
        await sender.send(encode("again"), socket.addr);
        const { from } = await receiveCopy(socket);
        assertEquals(from, sender.addr);
        // Unchanged, the same object comes again (made once per peer); changed, it is the
        // receiver's now, and another one comes.
        assertEquals(from === previous, change === null, `after ${change}`);
        previous = from;
      }
    } finally {
      socket.close();
      sender.close();
    }
  });
}

Deno.test("udp socket (epoll): peers at two addresses on one port each keep their own source", async () => {
  const socket = await openDatagramSocket({ backend: "epoll" });
  const a = await peer("127.0.0.2");
  const b = await peer("127.0.0.3", a.addr.port);
  try {
    const seen = new Map<string, Deno.NetAddr>();
    for (let round = 0; round < 3; round++) {
      for (const sender of [a, b, b, a]) {
        await sender.send(encode("hi"), socket.addr);
        const { from } = await receiveCopy(socket);
        assertEquals(from, sender.addr);
        // The same object for a peer's every datagram, whichever came between.
        const first = seen.get(from.hostname) ?? from;
        seen.set(from.hostname, first);
        assert(from === first, `round ${round}: a new object for ${from.hostname}`);
      }
    }
    assertEquals([...seen.keys()], ["127.0.0.2", "127.0.0.3"]);
  } finally {
    socket.close();
    a.close();
    b.close();
  }
});

Deno.test({
  name: "udp socket: getSocketOptions reads a Deno.DatagramConn too",
  ignore: !hasUnstableNet(),
  fn() {
    const conn = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
    try {
      assert(getSocketOptions(conn).receiveBufferSize > 0);
    } finally {
      conn.close();
    }
  },
});

rerunUnderUnstableNet(import.meta.url, "udp socket (deno): datagrams both ways");
