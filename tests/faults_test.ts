/**
 * Faults on purpose (`faults` of serveEcho and serveUdpEcho), on real
 * sockets: answers held back and kept in order, sent at the throttle's pace
 * with memory bounded, connections reset with RST, datagrams dropped; on
 * both TCP backends and both APIs.
 */

import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { type EchoApi, serveEcho, serveUdpEcho } from "../src/echo/mod.ts";
import { TCP_BACKENDS } from "../src/tcp/mod.ts";
import {
  assertSameBytes,
  concat,
  dial,
  outcome,
  randomBytes,
  readExactly,
  readToEnd,
  waitFor,
  writeAll,
} from "./_helpers.ts";
import { BACKENDS, peer } from "./_udp.ts";
import { connectTcp } from "../src/tcp/client.ts";
import { connectUdp } from "../src/udp/client.ts";
import { getPoller } from "../src/poll/_poller.ts";
import { monotonicMs } from "../src/libc/_clock.ts";
import { EPOLLIN, O_CLOEXEC, O_NONBLOCK } from "../src/libc/_constants.ts";

const APIS: EchoApi[] = ["protocol", "stream"];

/** Milliseconds from writing `data` on `conn` to the first byte of its answer; reads it all. */
async function timeToAnswer(conn: Deno.TcpConn, data: Uint8Array): Promise<number> {
  const buffer = new Uint8Array(data.length);
  const start = performance.now();
  await writeAll(conn, data);
  const n = await conn.read(buffer);
  const elapsed = performance.now() - start;
  if (n === null) throw new Error("end of input instead of an answer");
  if (n < data.length) buffer.set(await readExactly(conn, data.length - n), n);
  assertSameBytes(buffer, data, "the answer");
  return elapsed;
}

for (const backend of TCP_BACKENDS) {
  for (const api of APIS) {
    const name = `${backend}: ${api} API`;

    Deno.test(`${name}: delay 300 answers no sooner than 300 ms, and counts`, async () => {
      await using server = serveEcho({ port: 0, backend, api, faults: { delay: 300 } });
      using conn = await dial(server.addr);
      for (let i = 0; i < 2; i++) {
        const ms = await timeToAnswer(conn, randomBytes(100, i));
        assert(ms >= 299, `answered after ${ms.toFixed(1)} ms`);
        assert(ms < 3000, `answered after ${ms.toFixed(1)} ms`);
      }
      assertEquals(server.counters.faults, { delayed: 2, throttled: 0, resets: 0 });
    });

    Deno.test(`${name}: under a jittered delay, 200 small writes come back whole and in order`, async () => {
      await using server = serveEcho({
        port: 0,
        backend,
        api,
        faults: { delay: 40, jitter: 39 },
      });
      using conn = await dial(server.addr);
      const sent = Array.from({ length: 200 }, (_, i) => randomBytes(7 + (i % 13), i));
      const total = sent.reduce((sum, piece) => sum + piece.length, 0);
      const reading = readExactly(conn, total);
      for (const piece of sent) {
        await writeAll(conn, piece);
        // Apart in time, so the server reads them apart and draws a delay for each.
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      assertSameBytes(await reading, concat(sent), "the echo");
      assert(server.counters.faults!.delayed > 20, `${server.counters.faults!.delayed} delays`);
    });

    Deno.test(`${name}: delayed bytes count in counters.buffered until they go out`, async () => {
      await using server = serveEcho({ port: 0, backend, api, faults: { delay: 1500 } });
      using conn = await dial(server.addr);
      const data = randomBytes(10_000, 3);
      await writeAll(conn, data);
      await waitFor(() => server.counters.buffered >= data.length, "the held bytes to count");
      assertSameBytes(await readExactly(conn, data.length), data, "the echo");
      await waitFor(() => server.counters.buffered === 0, "the held bytes to be let go");
    });

    for (const halfClosed of [false, true]) {
      Deno.test(`${name}: a graceful shutdown sends what the delay and the throttle hold${halfClosed ? ", the client half-closed" : ""}, then closes`, async () => {
        const server = serveEcho({
          port: 0,
          backend,
          api,
          faults: { delay: 300, throttle: 20_000 },
        });
        const conn = await dial(server.addr);
        try {
          const data = randomBytes(3000, 7);
          await writeAll(conn, data);
          if (halfClosed) await conn.closeWrite();
          await waitFor(() => server.counters.buffered >= data.length, "the bytes to be held");
          const stopping = server.shutdown();
          assertSameBytes(await readExactly(conn, data.length), data, "the echo");
          assertEquals(await readToEnd(conn), new Uint8Array(0));
          await stopping;
          assertEquals(server.counters.bytesSent, data.length);
        } finally {
          conn.close();
        }
      });
    }

    Deno.test(`${name}: a graceful shutdown sends back what until mode kept, then closes`, async () => {
      const server = serveEcho({ port: 0, backend, api, mode: "until", until: "quit" });
      const conn = await dial(server.addr);
      try {
        const data = randomBytes(500, 8).map((byte) => byte === 0x71 ? 0 : byte); // no "q"
        await writeAll(conn, data);
        await waitFor(() => server.counters.buffered >= data.length, "the bytes to be kept");
        const stopping = server.shutdown();
        assertSameBytes(await readExactly(conn, data.length), data, "what was kept");
        assertEquals(await readToEnd(conn), new Uint8Array(0));
        await stopping;
      } finally {
        conn.close();
      }
    });

    Deno.test(`${name}: throttle 10,000 B/s sends 20 KB in no less than 1.8 s`, async () => {
      await using server = serveEcho({ port: 0, backend, api, faults: { throttle: 10_000 } });
      using conn = await dial(server.addr);
      const data = randomBytes(20_000, 4);
      const start = performance.now();
      const reading = readExactly(conn, data.length);
      await writeAll(conn, data);
      assertSameBytes(await reading, data, "the echo");
      const ms = performance.now() - start;
      assert(ms >= 1800, `20 KB took ${ms.toFixed(0)} ms`);
      assertEquals(server.counters.faults!.throttled, data.length);
    });

    Deno.test(`${name}: a throttled connection flooded with 10 MB reads little and holds little`, async () => {
      await using server = serveEcho({ port: 0, backend, api, faults: { throttle: 10_000 } });
      const conn = await dial(server.addr);
      const flood = writeAll(conn, new Uint8Array(10 << 20)).catch(() => {});
      await waitFor(() => server.counters.bytesReceived > 64 * 1024, "the server to read");
      // A window to see it stay bounded: unpaused, the server reads the 10 MB well within it.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const { bytesReceived, bufferedPeak } = server.counters;
      conn.close();
      await flood;
      assert(bufferedPeak < 1 << 20, `held up to ${bufferedPeak} bytes`);
      assert(bytesReceived < 3 << 20, `read ${bytesReceived} bytes`);
    });

    Deno.test(`${name}: resetAfter 4096 echoes the first 4096 bytes, then the client sees ECONNRESET`, async () => {
      await using server = serveEcho({ port: 0, backend, api, faults: { resetAfter: 4096 } });
      using conn = await dial(server.addr);
      const first = randomBytes(3000, 5);
      const second = randomBytes(3000, 6);
      await writeAll(conn, first);
      assertSameBytes(await readExactly(conn, 3000), first, "the echo before the threshold");
      await writeAll(conn, second);
      assertSameBytes(
        await readExactly(conn, 1096),
        second.subarray(0, 1096),
        "the echo up to the threshold",
      );
      await assertRejects(() => conn.read(new Uint8Array(100)), Deno.errors.ConnectionReset);
      await waitFor(() => server.connections === 0, "the server to forget the connection");
      assertEquals(server.counters.faults!.resets, 1);
      assertEquals(server.counters.bytesSent, 4096);
    });
  }
}

Deno.test("epoll: protocol API: a jittered delay spreads answers within its bounds", async () => {
  await using server = serveEcho({ port: 0, faults: { delay: 200, jitter: 100 } });
  using conn = await dial(server.addr);
  const times: number[] = [];
  for (let i = 0; i < 8; i++) times.push(await timeToAnswer(conn, randomBytes(10, i)));
  for (const ms of times) assert(ms >= 99 && ms < 1500, `answered after ${ms.toFixed(1)} ms`);
  const spread = Math.max(...times) - Math.min(...times);
  assert(spread > 20, `answers within ${spread.toFixed(1)} ms of each other: ${times}`);
});

Deno.test("deno: stream API: delay and throttle together, then once mode closes after the answer", async () => {
  await using server = serveEcho({
    port: 0,
    backend: "deno",
    api: "stream",
    mode: "once",
    faults: { delay: 200, throttle: 500 },
  });
  using conn = await dial(server.addr);
  const data = randomBytes(200, 9); // one read (the deno backend's first reads take 256 bytes)
  const start = performance.now();
  await writeAll(conn, data);
  assertSameBytes(await readExactly(conn, data.length), data, "the echo");
  assertEquals(await conn.read(new Uint8Array(1)), null, "end of input after the answer");
  // 200 ms of delay, then 200 bytes at 500 B/s of which the first 10 go at once.
  const ms = performance.now() - start;
  assert(ms >= 570, `answered whole after ${ms.toFixed(0)} ms: delay and throttle both applied`);
});

/**
 * Keeps this process's poller busy, as a server under load does: an
 * eventfd that is always readable, registered with it, whose events do
 * nothing. Deno's timers then run on the poller's turns, every 10 ms.
 */
function busyPoller(): Disposable {
  const poller = getPoller();
  if (typeof poller === "string") throw new Error(poller);
  const libc = poller.libc;
  const fd = libc.linux.eventfd(1, O_NONBLOCK | O_CLOEXEC);
  poller.add(fd, { onEvents() {}, onPollerError() {} }, EPOLLIN);
  return {
    [Symbol.dispose]() {
      poller.remove(fd);
      libc.symbols.close(fd);
    },
  };
}

/**
 * Asserts that a 30 ms delay held to its time, with this process's poller
 * kept busy: nine one-byte requests, each `send` once the last was
 * answered (`answered` is set to what the client calls on an answer), are
 * each answered in 30 ms or more, with a median under 35. Deno's timers
 * here fire on the poller's turns: 10 ms late as a rule.
 */
async function assertDelayHolds(
  send: (data: Uint8Array) => void,
  onAnswer: (answered: () => void) => void,
): Promise<void> {
  using _busy = busyPoller();
  const waits: number[] = [];
  for (let i = 0; i < 9; i++) {
    const answer = new Promise<void>((resolve) => onAnswer(resolve));
    const start = monotonicMs();
    send(Uint8Array.of(i));
    await answer;
    waits.push(monotonicMs() - start);
  }
  const middle = waits.toSorted((a, b) => a - b)[waits.length >> 1];
  const all = waits.map((ms) => ms.toFixed(1)).join(", ");
  assert(waits.every((ms) => ms >= 29.9), `answered after ${all} ms`);
  assert(middle < 35, `answered after ${all} ms`);
}

Deno.test("epoll: a delay holds to its time while the poller is busy (its timers, not Deno's)", async () => {
  await using server = serveEcho({ port: 0, backend: "epoll", faults: { delay: 30 } });
  // The client on the poller too: on Deno's sockets its reads would wait for the turns.
  let answered = () => {};
  const { transport } = await connectTcp({ port: server.addr.port, backend: "epoll" }, () => ({
    dataReceived: () => answered(),
  }));
  try {
    await assertDelayHolds((data) => transport.write(data), (then) => answered = then);
  } finally {
    transport.close();
  }
});

Deno.test("UDP (epoll): a delay holds to its time while the poller is busy (its timers, not Deno's)", async () => {
  await using server = await serveUdpEcho({ port: 0, backend: "epoll", faults: { delay: 30 } });
  let answered = () => {};
  const { transport } = await connectUdp({ port: server.addr.port }, () => ({
    datagramReceived: () => answered(),
  }));
  try {
    await assertDelayHolds((data) => transport.send(data), (then) => answered = then);
  } finally {
    transport.close();
  }
});

Deno.test("UDP: delay 300 answers no sooner than 300 ms, and counts", async () => {
  await using server = await serveUdpEcho({ port: 0, faults: { delay: 300 } });
  const socket = await peer();
  try {
    const start = performance.now();
    await socket.send(new TextEncoder().encode("late"), server.addr);
    const answer = await socket.receive();
    const ms = performance.now() - start;
    assertEquals(new TextDecoder().decode(answer![0]), "late");
    assert(ms >= 299, `answered after ${ms.toFixed(1)} ms`);
    assertEquals(server.counters.faults, { delayed: 1 });
  } finally {
    socket.close();
    await socket.closed;
  }
});

for (const backend of BACKENDS) {
  Deno.test(`UDP (${backend}): a graceful shutdown sends the answers the delay holds, and takes no more in`, async () => {
    const server = await serveUdpEcho({ port: 0, backend, faults: { delay: 300 } });
    const socket = await peer();
    try {
      for (const word of ["one", "two", "three"]) {
        await socket.send(new TextEncoder().encode(word), server.addr);
      }
      await waitFor(() => server.counters.faults!.delayed === 3, "three answers held");
      const stopping = server.shutdown();
      // Sent after the stop began: not taken in, so not answered.
      await socket.send(new TextEncoder().encode("four"), server.addr);
      const answers: string[] = [];
      const gathering = (async () => {
        for (let i = 0; i < 3; i++) {
          answers.push(new TextDecoder().decode((await socket.receive())![0]));
        }
      })();
      // Bounded: answers dropped at the stop would leave it waiting.
      assertEquals(await outcome(gathering), "resolved");
      assertEquals(answers, ["one", "two", "three"]);
      await stopping;
      assertEquals([server.counters.received, server.counters.sent], [3, 3]);
    } finally {
      socket.close();
      await socket.closed;
    }
  });
}

Deno.test("UDP: drop 50 leaves about half of 400 datagrams unanswered, counted as injected", async () => {
  await using server = await serveUdpEcho({ port: 0, faults: { drop: 50 } });
  const socket = await peer();
  try {
    let answered = 0;
    const receiving = (async () => {
      while ((await socket.receive()) !== null) answered++;
    })();
    for (let i = 0; i < 400; i++) {
      await socket.send(new TextEncoder().encode(`datagram ${i}`), server.addr);
      // Paced, so that no datagram is lost in a full socket buffer on a busy machine.
      if (i % 20 === 19) await waitFor(() => server.counters.received === i + 1, "the server");
    }
    await waitFor(() => answered === server.counters.sent, "every answer sent to arrive");
    const { drops, dropped, sent, received } = server.counters;
    assertEquals(received, 400);
    assertEquals(sent + drops.injected, 400);
    assertEquals(dropped, drops.injected);
    assert(sent >= 120 && sent <= 280, `${sent} of 400 answered`);
    socket.close();
    await receiving;
  } finally {
    socket.close();
    await socket.closed;
  }
});

Deno.test("bad faults are refused up front, naming the value", async () => {
  const tcp: [unknown, string][] = [
    [{ delay: -1 }, "faults.delay"],
    [{ delay: 1.5 }, "faults.delay"],
    [{ jitter: 10 }, "faults.jitter"],
    [{ throttle: 0 }, "faults.throttle"],
    [{ resetAfter: 0 }, "faults.resetAfter"],
  ];
  for (const [faults, what] of tcp) {
    for (const api of APIS) {
      assertThrows(
        () => serveEcho({ port: 0, api, faults: faults as { delay: number } }),
        RangeError,
        what,
      );
    }
  }
  assertThrows(() => serveEcho({ port: 0, faults: 5 as never }), TypeError, "faults 5");
  for (const drop of [-1, 101, NaN]) {
    await assertRejects(
      () => serveUdpEcho({ port: 0, faults: { drop } }),
      RangeError,
      "faults.drop",
    );
  }
  await assertRejects(() => serveUdpEcho({ port: 0, faults: { jitter: 3 } }), RangeError, "jitter");
});
