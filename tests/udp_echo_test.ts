import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import {
  type DatagramProtocol,
  type DatagramTransport,
  MAX_DATAGRAM_SIZE,
  serveUdp,
} from "../src/udp/mod.ts";
import { EchoDatagramProtocol, resolveUdpEchoPrefix } from "../src/echo/datagram.ts";
import { sendInPlace, type SendsInPlace } from "../src/udp/_send_in_place.ts";
import { type DatagramSocket, openDatagramSocket } from "../src/udp/socket.ts";
import { getPoller } from "../src/poll/_poller.ts";
import { serveUdpEcho } from "../mod.ts";
import { decode, encode, randomBytes } from "./_helpers.ts";
import {
  ask,
  BACKENDS,
  clogNextSockets,
  peer,
  receiveCopy,
  rerunUnderUnstableNet,
} from "./_udp.ts";

/** Datagram `i` of a burst: its own size (1 to 2,970 bytes) and bytes, its number in front. */
function burstDatagram(i: number): Uint8Array {
  const data = randomBytes(1 + ((i * 733) % 2970), i + 1);
  data[0] = i;
  return data;
}

/**
 * A client whose sends reach the kernel before they return (the epoll
 * backend's, where it runs): sends made in a row are all queued before a
 * server on this thread reads, so it reads them as one batch.
 */
function batchingClient(): Promise<DatagramSocket> {
  return typeof getPoller() === "string"
    ? peer()
    : openDatagramSocket({ hostname: "127.0.0.1", port: 0, backend: "epoll" });
}

/** Sends "first" and "second" in a row from `client` to `to`; their answers, sorted. */
async function askBoth(client: DatagramSocket, to: Deno.NetAddr): Promise<string[]> {
  await Promise.all([client.send(encode("first"), to), client.send(encode("second"), to)]);
  const answers = [];
  for (let i = 0; i < 2; i++) answers.push(decode((await receiveCopy(client)).data));
  return answers.sort();
}

/** An echo that the server's protocol wraps, and one it extends: both change a datagram after it. */
const wrappedEchoes: [string, () => DatagramProtocol][] = [
  ["an echo inside another protocol", () => {
    const echo = new EchoDatagramProtocol();
    return {
      connectionMade: (transport: DatagramTransport) => echo.connectionMade(transport),
      datagramReceived(data: Uint8Array, from: Deno.NetAddr) {
        echo.datagramReceived(data, from);
        data.fill(0x21);
      },
    };
  }],
  ["a subclass of the echo", () =>
    new class extends EchoDatagramProtocol {
      override datagramReceived(data: Uint8Array, from: Deno.NetAddr): void {
        super.datagramReceived(data, from);
        data.fill(0x21);
      }
    }()],
];

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

for (const backend of BACKENDS) {
  Deno.test(`udp echo (${backend}): bursts of many sizes come back exact, sent at once or queued first`, async () => {
    // On epoll the echo sends a batch's datagrams from where they were received, without a
    // copy: each answer must still carry its own bytes, from its own slot, both when the
    // batch's sendmmsg takes it and when a full socket queues it (copied out of the slot).
    const COUNT = 32;
    let largest = 0;
    const clogged = clogNextSockets(backend, (n) => largest = Math.max(largest, n));
    await using server = await serveUdpEcho({ backend });
    clogged[Symbol.dispose]();
    const client = await peer();
    const answers = async (first: number) => {
      for (let k = 0; k < COUNT; k++) {
        const { data } = await receiveCopy(client);
        assert(data.length > 0 && data[0] >= first && data[0] < first + COUNT, `${data[0]}`);
        assertEquals(data, burstDatagram(data[0]), `answer ${data[0]}`);
      }
    };
    try {
      // Queued: the server cannot send until unclogged.
      await Promise.all(
        Array.from({ length: COUNT }, (_, i) => client.send(burstDatagram(i), server.addr)),
      );
      while (server.counters.received < COUNT) await new Promise((r) => setTimeout(r, 5));
      clogged.unclog();
      await answers(0);
      // Sent at once, a batch's answers together.
      await Promise.all(
        Array.from({ length: COUNT }, (_, i) => client.send(burstDatagram(COUNT + i), server.addr)),
      );
      await answers(COUNT);
      if (backend === "epoll") assert(largest > 1, "no batch held more than one datagram");
    } finally {
      client.close();
    }
  });

  Deno.test(`udp echo (${backend}): two echo servers in one process, bursts to both at once`, async () => {
    // On epoll both servers' batches are read into the one receive arena of the process, and
    // their answers sent from it: each batch's answers must be out before the next batch (the
    // other server's) is read in over them.
    const COUNT = 16;
    await using a = await serveUdpEcho({ backend });
    await using b = await serveUdpEcho({ backend });
    // Both bursts wait for the servers before either reads (see `batchingClient`).
    const toA = await batchingClient();
    const toB = await batchingClient();
    try {
      const sends: Promise<void>[] = [];
      for (let i = 0; i < COUNT; i++) {
        sends.push(toA.send(burstDatagram(i), a.addr));
        sends.push(toB.send(burstDatagram(COUNT + i), b.addr));
      }
      await Promise.all(sends);
      for (const [socket, first] of [[toA, 0], [toB, COUNT]] as const) {
        for (let k = 0; k < COUNT; k++) {
          const { data } = await receiveCopy(socket);
          assert(data.length > 0 && data[0] >= first && data[0] < first + COUNT, `${data[0]}`);
          assertEquals(data, burstDatagram(data[0]), `answer ${data[0]}`);
        }
      }
    } finally {
      toA.close();
      toB.close();
    }
  });

  for (const [how, makeProtocol] of wrappedEchoes) {
    Deno.test(`udp echo (${backend}): ${how} answers a batch with the bytes as they were at its call`, async () => {
      // The outer code owns the datagram it was lent, and changes it once the echo has
      // answered: the echo's answers, sent at the batch's end, must not be the changed bytes.
      await using server = await serveUdp({ backend }, makeProtocol);
      const client = await batchingClient();
      try {
        assertEquals(await askBoth(client, server.addr), ["first", "second"]);
      } finally {
        client.close();
      }
    });
  }

  Deno.test(`udp echo (${backend}): sendInPlace sends a batch's answers from the receive arena on epoll`, async () => {
    // What the transport's own protocol promises (leaving the bytes unchanged) is what makes
    // the copy unneeded: breaking it shows that epoll sent a batch's answers from where the
    // datagrams were received. A lone datagram's answer leaves at once, as do all elsewhere.
    let transport!: DatagramTransport & SendsInPlace;
    const protocol = {
      connectionMade: (t: DatagramTransport) => void (transport = t as typeof transport),
      datagramReceived(data: Uint8Array, from: Deno.NetAddr) {
        transport[sendInPlace](protocol, data, from);
        data.fill(0x21);
      },
    };
    await using server = await serveUdp({ backend }, () => protocol);
    const client = await batchingClient();
    try {
      assertEquals(decode(await ask(client, server.addr, encode("alone"))), "alone");
      assertEquals(
        await askBoth(client, server.addr),
        backend === "epoll" ? ["!!!!!", "!!!!!!"] : ["first", "second"],
      );
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
