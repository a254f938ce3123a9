import { assertEquals, assertRejects, assertThrows } from "@std/assert";
import { MAX_DATAGRAM_SIZE } from "../src/udp/mod.ts";
import { resolveUdpEchoPrefix } from "../src/echo/datagram.ts";
import { serveUdpEcho } from "../mod.ts";
import { decode, encode, randomBytes } from "./_helpers.ts";
import { ask, BACKENDS, peer, receiveCopy, rerunUnderUnstableNet } from "./_udp.ts";

for (const backend of BACKENDS) {
  Deno.test(`udp echo (${backend}): prefix mode answers each datagram with the prefix in front`, async () => {
    await using server = await serveUdpEcho({ backend, mode: "prefix", prefix: "GOT:" });
    const client = await peer();
    try {
      assertEquals(decode(await ask(client, server.addr, encode("hello"))), "GOT:hello");
      assertEquals(decode(await ask(client, server.addr, new Uint8Array(0))), "GOT:");
      // A burst: each answer keeps its own bytes, though the server reuses one buffer.
      for (let i = 0; i < 100; i++) await client.send(encode(`m${i}`), server.addr);
      for (let i = 0; i < 100; i++) {
        assertEquals(decode((await receiveCopy(client)).data), `GOT:m${i}`);
      }
      const big = randomBytes(MAX_DATAGRAM_SIZE - 4, 3);
      const answer = await ask(client, server.addr, big);
      assertEquals(decode(answer.subarray(0, 4)), "GOT:");
      assertEquals(answer.subarray(4), big);
    } finally {
      client.close();
    }
  });

  Deno.test(`udp echo (${backend}): all 256 byte values come back exact; too long with the prefix is not answered`, async () => {
    await using server = await serveUdpEcho({ backend, prefix: "GOT:" });
    const client = await peer();
    try {
      const all = Uint8Array.from({ length: 256 }, (_, i) => i);
      assertEquals((await ask(client, server.addr, all)).subarray(4), all);
      // 65,507 bytes plus "GOT:" is more than IPv4 carries: dropped, the next one answered.
      await client.send(new Uint8Array(MAX_DATAGRAM_SIZE), server.addr);
      assertEquals(decode(await ask(client, server.addr, encode("next"))), "GOT:next");
      assertEquals(server.counters.received, 3);
      assertEquals(server.counters.sent, 2);
      // Counted as a drop, by its reason.
      assertEquals(server.counters.drops.tooLarge, 1);
      assertEquals(server.counters.dropped, 1);
    } finally {
      client.close();
    }
  });
}

Deno.test("udp echo: the stream modes are refused, saying why", async () => {
  await assertRejects(
    () => serveUdpEcho({ mode: "until" as "echo" }),
    RangeError,
    'Cannot use echo mode "until" for UDP: a datagram stands alone',
  );
  assertThrows(
    () => resolveUdpEchoPrefix({ mode: "once" as "echo" }),
    RangeError,
    'Cannot use echo mode "once" for UDP:',
  );
  assertThrows(
    () => resolveUdpEchoPrefix({ mode: "loud" as "echo" }),
    RangeError,
    'Cannot use echo mode "loud" for UDP: it must be "echo", "prefix" or "info"',
  );
  assertThrows(
    () => resolveUdpEchoPrefix({ mode: "echo", prefix: "X" }),
    RangeError,
    'Cannot use prefix with mode "echo"',
  );
  assertEquals(decode(resolveUdpEchoPrefix({ mode: "prefix" })), "GOT:");
  assertEquals(resolveUdpEchoPrefix().length, 0);
});

rerunUnderUnstableNet(import.meta.url, "udp echo (deno): prefix mode answers");
