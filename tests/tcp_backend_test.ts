import { openIoDescriptors } from "./_helpers.ts";
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { type BufferedProtocol, serveTcp, TCP_BACKENDS, type Transport } from "../src/tcp/mod.ts";
import { serveEcho } from "../mod.ts";
import {
  assertSameBytes,
  decode,
  dial,
  encode,
  outcome,
  randomBytes,
  readExactly,
  readToEnd,
  waitFor,
  writeAll,
  writeInChunks,
} from "./_helpers.ts";

for (const backend of TCP_BACKENDS) {
  Deno.test(`${backend} backend: 8 connections echo 4 MiB each, byte for byte, in both APIs`, async () => {
    for (const api of ["protocol", "stream"] as const) {
      await using server = serveEcho({ port: 0, backend, api });
      assertEquals(server.backend, backend);
      await Promise.all(Array.from({ length: 8 }, async (_, i) => {
        const conn = await dial(server.addr);
        const data = randomBytes(4 << 20, 100 + i);
        const echoed = readExactly(conn, data.length);
        await writeInChunks(conn, data, 100 + i);
        assertSameBytes(await echoed, data, `${api} connection ${i}`);
        conn.close();
      }));
      await waitFor(() => server.connections === 0, "the connections to close");
      const { bytesReceived, bytesSent } = server.counters;
      assertEquals(bytesReceived, 8 * (4 << 20));
      assertEquals(bytesSent, bytesReceived);
    }
  });

  Deno.test(`${backend} backend: half-close, addresses and the callback order`, async () => {
    const calls: string[] = [];
    let served: Transport | undefined;
    let peer: Deno.NetAddr | undefined, local: Deno.NetAddr | undefined;
    let noDelay: boolean | undefined;
    const server = serveTcp({ port: 0, backend }, () => {
      let transport: Transport;
      let count = 0;
      return {
        connectionMade(t) {
          transport = served = t;
          calls.push("made");
          peer = t.getExtraInfo("peername") as Deno.NetAddr;
          local = t.getExtraInfo("sockname") as Deno.NetAddr;
          noDelay = t.getExtraInfo("socketOptions").noDelay;
        },
        dataReceived(data) {
          calls.push("data");
          count += data.length;
        },
        eofReceived() {
          calls.push("eof");
          transport.write(encode(`${count}\n`));
          return false;
        },
        connectionLost(error) {
          calls.push(`lost ${error}`);
        },
      };
    });
    const conn = await dial(server.addr);
    await writeAll(conn, encode("hello"));
    await conn.closeWrite();
    assertEquals(decode(await readToEnd(conn)), "5\n");
    conn.close();
    await server.shutdown();
    assertEquals(calls[0], "made");
    assertEquals(calls.slice(-2), ["eof", "lost undefined"]);
    assertEquals(peer?.port, (conn.localAddr as Deno.NetAddr).port);
    assertEquals(local?.port, server.addr.port);
    assertEquals(noDelay, true);
    // First asked for after the connection closed: made then, already resolved.
    assertEquals(await outcome(served!.closed), "resolved");
  });

  Deno.test(`${backend} backend: pauseReading holds data back until resumeReading`, async () => {
    let paused: Transport | undefined;
    let received = "";
    const server = serveTcp({ port: 0, backend }, () => {
      let transport: Transport;
      return {
        connectionMade(t) {
          transport = t;
          // Only the first connection pauses; the second one shows the server kept reading.
          if (paused === undefined) {
            paused = t;
            t.pauseReading();
          }
        },
        dataReceived(data) {
          if (transport === paused) received += decode(data);
          transport.write(data);
        },
      };
    });
    const held = await dial(server.addr);
    await writeAll(held, encode("held"));
    const other = await dial(server.addr);
    await writeAll(other, encode("other"));
    assertEquals(decode(await readExactly(other, 5)), "other");
    // The server has read and answered since "held" arrived, yet did not deliver it.
    assertEquals(received, "");
    paused!.resumeReading();
    assertEquals(decode(await readExactly(held, 4)), "held");
    assertEquals(received, "held");
    held.close();
    other.close();
    await server.shutdown();
  });

  Deno.test(`${backend} backend: a BufferedProtocol receives into its own small buffer, in order`, async () => {
    let dataReceivedCalls = 0;
    let largestRead = 0;
    const server = serveTcp({ port: 0, backend }, () => {
      let transport: Transport;
      const scratch = new Uint8Array(7);
      const protocol: BufferedProtocol = {
        connectionMade: (t) => void (transport = t),
        getBuffer: () => scratch,
        bufferUpdated(n) {
          largestRead = Math.max(largestRead, n);
          transport.write(scratch.slice(0, n));
        },
        dataReceived: () => void dataReceivedCalls++,
      };
      return protocol;
    });
    const conn = await dial(server.addr);
    const data = randomBytes(100_000, 7);
    const echoed = readExactly(conn, data.length);
    await writeAll(conn, data);
    assertSameBytes(await echoed, data);
    conn.close();
    await server.shutdown();
    assertEquals(dataReceivedCalls, 0, "dataReceived is not called on a BufferedProtocol");
    assertEquals(largestRead, 7, "no read is larger than the buffer getBuffer lent");
  });

  Deno.test(`${backend} backend: getBuffer returning nothing usable aborts only that connection`, async () => {
    const errors: (Error | undefined)[] = [];
    let connections = 0;
    const server = serveTcp({ port: 0, backend }, () => {
      const broken = connections++ === 0;
      const scratch = new Uint8Array(1024);
      let transport: Transport;
      const protocol: BufferedProtocol = {
        connectionMade: (t) => void (transport = t),
        getBuffer: () => (broken ? new Uint8Array(0) : scratch),
        bufferUpdated: (n) => transport.write(scratch.slice(0, n)),
        connectionLost: (error) => void errors.push(error),
      };
      return protocol;
    });
    const bad = await dial(server.addr);
    await writeAll(bad, encode("x"));
    // Closed without an answer: a reset when the byte was never read (epoll), else a plain close.
    const answer = await readToEnd(bad).catch((error) => {
      if (error instanceof Deno.errors.ConnectionReset) return new Uint8Array(0);
      throw error;
    });
    assertEquals(answer.length, 0);
    await waitFor(() => errors.length === 1, "the broken connection to be lost");
    const [error] = errors;
    assertInstanceOf(error, TypeError);
    assertStringIncludes(String(error), "getBuffer");
    assertStringIncludes(String(error), "an empty Uint8Array");
    const good = await dial(server.addr);
    await writeAll(good, encode("fine"));
    assertEquals(decode(await readExactly(good, 4)), "fine");
    bad.close();
    good.close();
    await server.shutdown();
  });
}

Deno.test("an unknown backend is refused before any socket is opened", () => {
  const error = assertThrows(
    () => serveEcho({ port: 0, backend: "io_uring" as "epoll" }),
    RangeError,
  );
  assertStringIncludes(error.message, `"io_uring"`);
});

Deno.test("without --allow-ffi the default backend is deno, and asking for epoll says why not", async () => {
  const fixture = new URL("./fixtures/backend_without_ffi.ts", import.meta.url);
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", "--allow-read", fixture.href],
    signal: AbortSignal.timeout(60_000),
  }).output();
  assertEquals(code, 0, decode(stderr));
  const lines = decode(stdout).trim().split("\n");
  assertEquals(lines[0], "default: deno");
  assert(lines[1].startsWith("epoll: NotSupported: Cannot use the epoll backend here"), lines[1]);
  assertStringIncludes(lines[1], "--allow-ffi");
});

Deno.test({
  name:
    "epoll backend: two reusePort servers in one process both serve, then leave no socket behind",
  ignore: Deno.build.os !== "linux",
  async fn() {
    // The poller (an epoll instance and an eventfd, not sockets) lives as long as the process.
    await serveEcho({ port: 0, backend: "epoll" }).shutdown();
    const before = openIoDescriptors();
    {
      await using first = serveEcho({ port: 0, backend: "epoll", reusePort: true });
      await using second = serveEcho({ port: first.addr.port, backend: "epoll", reusePort: true });
      assertEquals(second.addr.port, first.addr.port);
      assertEquals(first.getSocketOptions().reusePort, true);
      assertEquals(second.getSocketOptions().reusePort, true);
      // The kernel spreads connections over both listeners: serve enough that both get some.
      const conns = await Promise.all(Array.from({ length: 32 }, () => dial(first.addr)));
      try {
        await Promise.all(conns.map(async (conn, i) => {
          await writeAll(conn, encode(`hello ${i}`));
          assertEquals(decode(await readExactly(conn, `hello ${i}`.length)), `hello ${i}`);
        }));
      } finally {
        for (const conn of conns) conn.close();
      }
      assertEquals(first.counters.accepted + second.counters.accepted, 32);
      assert(first.counters.accepted > 0 && second.counters.accepted > 0, "one listener got all");
    }
    assertEquals(openIoDescriptors(), before, "descriptors left open after both servers shut down");
  },
});

for (const backend of TCP_BACKENDS) {
  Deno.test({
    name: `${backend} backend: a server that fails to start leaves no socket behind`,
    ignore: Deno.build.os !== "linux",
    async fn() {
      await serveEcho({ port: 0, backend }).shutdown();
      const before = openIoDescriptors();
      await using taken = serveEcho({ port: 0, backend });
      const during = openIoDescriptors();
      for (let i = 0; i < 5; i++) {
        assertThrows(
          () => serveEcho({ port: taken.addr.port, backend }),
          Deno.errors.AddrInUse,
          `Cannot listen on 127.0.0.1:${taken.addr.port}: the address is already in use`,
        );
        assertThrows(
          () => serveTcp({ hostname: "no-such-host.invalid", port: 0, backend }, () => ({})),
          Deno.errors.NotFound,
          "Cannot listen on no-such-host.invalid:0: the host name does not resolve",
        );
      }
      assertEquals(openIoDescriptors(), during, "a failed start left a descriptor open");
      await taken.shutdown();
      assertEquals(openIoDescriptors(), before);
    },
  });
}
