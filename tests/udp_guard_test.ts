import { assert, assertEquals, assertRejects } from "@std/assert";
import { FORBIDDEN_SOURCE_PORTS } from "../src/udp/mod.ts";
import { serveUdpEcho } from "../mod.ts";
import { ReflectionGuard } from "../src/udp/guard.ts";
import { openDatagramSocket } from "../src/udp/socket.ts";
import { decode, encode } from "./_helpers.ts";
import { ask, BACKENDS, peer, receiveCopy, rerunUnderUnstableNet } from "./_udp.ts";

const at = (hostname: string, port: number): Deno.NetAddr => ({ transport: "udp", hostname, port });

/** Whether this process may bind a port below 1024 (root, or a lowered unprivileged start). */
async function canBindPrivileged(): Promise<boolean> {
  try {
    const probe = await openDatagramSocket({ port: 19, backend: "node" });
    probe.close();
    await probe.closed;
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.PermissionDenied) return false;
    throw error;
  }
}
const privileged = await canBindPrivileged();

Deno.test("reflection guard: the loop-prone source ports and this host's own port are refused", () => {
  const guard = new ReflectionGuard(at("127.0.0.1", 8888));
  for (const port of FORBIDDEN_SOURCE_PORTS) {
    assertEquals(guard.accept(at("192.0.2.1", port)), false, `port ${port}`);
  }
  assertEquals(FORBIDDEN_SOURCE_PORTS, [0, 7, 13, 17, 19, 37]);
  for (const port of [1, 6, 8, 18, 20, 36, 38, 53, 8887, 8889, 65535]) {
    assertEquals(guard.accept(at("192.0.2.1", port)), true, `port ${port}`);
  }
  // Its own address, and its port on any loopback address.
  assertEquals(guard.accept(at("127.0.0.1", 8888)), false);
  assertEquals(guard.accept(at("127.0.0.2", 8888)), false);
  assertEquals(guard.accept(at("::1", 8888)), false);
  // Another host on the same port is somebody else's.
  assertEquals(guard.accept(at("192.0.2.1", 8888)), true);
  assertEquals(guard.drops, { forbiddenPort: 6, ownAddress: 3, rateLimited: 0 });
});

Deno.test("reflection guard: a rate limit per source host, refilled over time", () => {
  const guard = new ReflectionGuard(at("127.0.0.1", 8888), { perSecond: 1000, burst: 5 });
  const results = Array.from({ length: 8 }, () => guard.accept(at("192.0.2.1", 5000)));
  assertEquals(results, [true, true, true, true, true, false, false, false]);
  // Another source has its own bucket; the port does not matter, the host does.
  assert(guard.accept(at("192.0.2.2", 5000)));
  assertEquals(guard.accept(at("192.0.2.1", 5001)), false);
  assertEquals(guard.drops.rateLimited, 4);
  // 1000 a second is one a millisecond: a few milliseconds later, tokens are back.
  const start = performance.now();
  while (performance.now() - start < 3);
  assert(guard.accept(at("192.0.2.1", 5000)), "no token came back");
});

Deno.test("reflection guard: turned off, only the rate limit applies", () => {
  const guard = new ReflectionGuard(at("127.0.0.1", 8888), { perSecond: 1, burst: 1 }, false);
  assert(guard.accept(at("192.0.2.1", 19)));
  assertEquals(guard.accept(at("192.0.2.1", 19)), false);
  assertEquals(guard.drops, { forbiddenPort: 0, ownAddress: 0, rateLimited: 1 });
});

for (const backend of BACKENDS) {
  Deno.test({
    name: `udp guard (${backend}): a datagram from source port 19 gets no answer, and is counted`,
    ignore: !privileged,
    async fn() {
      await using server = await serveUdpEcho({ backend });
      const chargen = await peer("127.0.0.1", 19);
      const client = await peer();
      try {
        await chargen.send(encode("from chargen"), server.addr);
        // The server handles datagrams in order: once this answer is back, the
        // first one was handled, and an answer to it would already be on its way.
        assertEquals(
          decode(await ask(client, server.addr, encode("from a client"))),
          "from a client",
        );
        const counters = server.counters;
        assertEquals(counters.drops.forbiddenPort, 1);
        assertEquals(counters.dropped, 1);
        assertEquals(counters.received, 2);
        assertEquals(counters.sent, 1);
        // The first datagram the port-19 socket gets is this marker, not an echo.
        await client.send(encode("marker"), chargen.addr);
        assertEquals(decode((await receiveCopy(chargen)).data), "marker");
      } finally {
        chargen.close();
        client.close();
      }
    },
  });

  Deno.test(`udp guard (${backend}): a datagram from the server's own port on this host gets no answer`, async () => {
    await using server = await serveUdpEcho({ backend });
    // 127.0.0.2 is this host too: an echo there on the same port would loop with ours.
    const twin = await peer("127.0.0.2", server.addr.port);
    const client = await peer();
    try {
      await twin.send(encode("loop?"), server.addr);
      assertEquals(decode(await ask(client, server.addr, encode("fine"))), "fine");
      assertEquals(server.counters.drops.ownAddress, 1);
      await client.send(encode("marker"), twin.addr);
      assertEquals(decode((await receiveCopy(twin)).data), "marker");
    } finally {
      twin.close();
      client.close();
    }
  });

  Deno.test(`udp guard (${backend}): past the per-source rate limit, datagrams are dropped and counted`, async () => {
    // One token a minute after a burst of 3: the test cannot refill it.
    await using server = await serveUdpEcho({
      backend,
      rateLimit: { perSecond: 1, burst: 3 },
    });
    const noisy = await peer();
    try {
      for (let i = 0; i < 10; i++) await noisy.send(encode(`n${i}`), server.addr);
      for (let i = 0; i < 3; i++) assertEquals(decode((await receiveCopy(noisy)).data), `n${i}`);
      // Counted as they are handled: wait for all ten.
      const other = await peer("127.0.0.3");
      try {
        assertEquals(decode(await ask(other, server.addr, encode("other"))), "other");
      } finally {
        other.close();
      }
      assertEquals(server.counters.drops.rateLimited, 7);
      assertEquals(server.counters.sent, 4);
    } finally {
      noisy.close();
    }
  });

  Deno.test(`udp guard (${backend}): reflectionGuard false answers every source`, async () => {
    await using server = await serveUdpEcho({ backend, reflectionGuard: false });
    const twin = await peer("127.0.0.2", server.addr.port);
    try {
      assertEquals(decode(await ask(twin, server.addr, encode("answered"))), "answered");
      assertEquals(server.counters.dropped, 0);
    } finally {
      twin.close();
    }
  });
}

Deno.test("udp guard: invalid rate limits are refused up front", async () => {
  await assertRejects(
    () => serveUdpEcho({ rateLimit: { perSecond: 1.5 } }),
    RangeError,
    "Cannot use rateLimit.perSecond 1.5: it must be a whole number from 1 to 1000000000",
  );
  await assertRejects(
    () => serveUdpEcho({ rateLimit: { perSecond: 10, burst: 0 } }),
    RangeError,
    "Cannot use rateLimit.burst 0:",
  );
  await assertRejects(
    () => serveUdpEcho({ rateLimit: 5 as unknown as { perSecond: number } }),
    TypeError,
    "Cannot use rateLimit 5: it must be { perSecond, burst? }",
  );
});

rerunUnderUnstableNet(import.meta.url, "udp guard (deno): a datagram from the server's own port");
