import { assert, assertEquals, assertThrows } from "@std/assert";
import { type Protocol, serveTcp, TCP_BACKENDS, type Transport } from "../src/tcp/mod.ts";
import { decode, dial, encode, readExactly, readToEnd, writeAll } from "./_helpers.ts";

/** An echo protocol factory that tells when each of its connections is lost. */
function echoWithLosses() {
  const losses: PromiseWithResolvers<void>[] = [];
  const factory = (): Protocol => {
    const lost = Promise.withResolvers<void>();
    losses.push(lost);
    let transport: Transport;
    return {
      connectionMade: (t) => void (transport = t),
      dataReceived: (data) => transport.write(data),
      connectionLost: () => lost.resolve(),
    };
  };
  return { factory, losses };
}

async function echoOn(conn: Deno.TcpConn, text: string): Promise<string> {
  await writeAll(conn, encode(text));
  return decode(await readExactly(conn, encode(text).length));
}

for (const backend of TCP_BACKENDS) {
  Deno.test(`${backend}: maxConnections: one more is closed at once and counted; the others go on`, async () => {
    const { factory, losses } = echoWithLosses();
    await using server = serveTcp({ port: 0, backend, maxConnections: 2 }, factory);
    const first = await dial(server.addr);
    const second = await dial(server.addr);
    try {
      assertEquals(await echoOn(first, "one"), "one");
      assertEquals(await echoOn(second, "two"), "two");
      const third = await dial(server.addr);
      // Closed by the server before anything was read: end of input, or a reset.
      const got = await readToEnd(third).catch((e) => e);
      assert(got instanceof Deno.errors.ConnectionReset || got.length === 0, String(got));
      third.close();
      assertEquals(server.counters.refused, 1);
      assertEquals(await echoOn(second, "still"), "still");
      // Once one closes, there is room again.
      first.close();
      await losses[0].promise;
      const fourth = await dial(server.addr);
      assertEquals(await echoOn(fourth, "four"), "four");
      fourth.close();
      assertEquals(server.counters.accepted, 3);
    } finally {
      second.close();
    }
  });

  Deno.test(`${backend}: idleTimeout: a quiet connection is closed, a busy one is not`, async () => {
    const { factory } = echoWithLosses();
    await using server = serveTcp({ port: 0, backend, idleTimeout: 300 }, factory);
    const quiet = await dial(server.addr);
    const busy = await dial(server.addr);
    try {
      assertEquals(await echoOn(quiet, "hello"), "hello");
      const start = performance.now();
      // The busy one talks every 50 ms (a sixth of the timeout) while the quiet one waits.
      const busyDone = (async () => {
        for (let i = 0; i < 12; i++) {
          assertEquals(await echoOn(busy, `b${i}`), `b${i}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      })();
      assertEquals((await readToEnd(quiet)).length, 0);
      const waited = performance.now() - start;
      assert(waited >= 300, `closed after ${waited.toFixed(0)} ms, before the 300 ms timeout`);
      await busyDone;
      assertEquals(await echoOn(busy, "alive"), "alive");
      assertEquals(server.counters.closedIdle, 1);
    } finally {
      quiet.close();
      busy.close();
    }
  });

  Deno.test(`${backend}: idleTimeout: a close that cannot flush to a reader that never reads is aborted`, async () => {
    const lost = Promise.withResolvers<void>();
    await using server = serveTcp({ port: 0, backend, idleTimeout: 200 }, () => ({
      connectionMade(t: Transport) {
        t.write(new Uint8Array(32 << 20)); // far more than the socket buffers hold
      },
      connectionLost: () => lost.resolve(),
    }));
    const stuck = await dial(server.addr);
    try {
      await lost.promise; // closed after one timeout, aborted after the next
      assertEquals(server.counters.closedIdle, 1);
    } finally {
      stuck.close();
    }
  });

  Deno.test(`${backend}: counters add up the bytes of open and closed connections`, async () => {
    const { factory, losses } = echoWithLosses();
    await using server = serveTcp({ port: 0, backend }, factory);
    const first = await dial(server.addr);
    await writeAll(first, new Uint8Array(1000));
    await readExactly(first, 1000);
    const open = server.counters; // counted while the connection is open
    assertEquals([open.bytesReceived, open.bytesSent], [1000, 1000]);
    first.close();
    await losses[0].promise;
    const second = await dial(server.addr);
    await writeAll(second, new Uint8Array(234));
    await readExactly(second, 234);
    const { bytesReceived, bytesSent } = server.counters;
    assertEquals([bytesReceived, bytesSent], [1234, 1234]); // the closed one's bytes are kept
    second.close();
  });
}

Deno.test("maxConnections and idleTimeout: invalid values are refused up front", () => {
  for (
    const [options, message] of [
      [{ maxConnections: 0 }, "Cannot use maxConnections 0:"],
      [{ idleTimeout: -1 }, "Cannot use idleTimeout -1:"],
      [{ idleTimeout: 1.5 }, "Cannot use idleTimeout 1.5:"],
    ] as const
  ) {
    assertThrows(() => serveTcp({ port: 0, ...options }, () => ({})), RangeError, message);
  }
});
