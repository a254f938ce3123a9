/**
 * Bytes handed to `write()` are the caller's: what goes out is what they
 * held at the call, whatever memory they live in. These tests forward data
 * between connections the way proxies written with the public API do, and
 * reuse buffers right after writing them, on both backends and both APIs.
 */

import { getPoller } from "../src/poll/_poller.ts";
import { assert, assertEquals } from "@std/assert";
import {
  connectTcp,
  type Protocol,
  serveTcp,
  TCP_BACKENDS,
  type Transport,
} from "../src/tcp/mod.ts";
import { connectTcpStreams, serveTcpStreams } from "../mod.ts";
import {
  assertSameBytes,
  dial,
  randomBytes,
  readExactly,
  waitFor,
  writeInChunks,
} from "./_helpers.ts";

const SIZE = 8 << 20;
/**
 * The proxy's sockets take little at a time, so its writes wait in its queues
 * (a write() that kept the caller's memory instead of a copy shows at once).
 */
const SMALL_SEND_BUFFER = { sendBufferSize: 4096 };

/**
 * An echo server that reads slowly: small reads, and a pause every few, so
 * a proxy in front of it has to queue what it forwards.
 */
function slowEchoUpstream(): { addr: Deno.NetAddr; done: Promise<void>; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = (async () => {
    const served: Promise<void>[] = [];
    for await (const conn of listener) {
      served.push((async () => {
        const buffer = new Uint8Array(4096);
        try {
          for (let reads = 0, n; (n = await conn.read(buffer)) !== null; reads++) {
            for (let sent = 0; sent < n;) sent += await conn.write(buffer.subarray(sent, n));
            if (reads % 4 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
          }
          await conn.closeWrite();
        } catch {
          // The proxy went away.
        } finally {
          conn.close();
        }
      })());
    }
    await Promise.all(served);
  })();
  return {
    addr: listener.addr,
    done,
    /** Stops accepting; each connection ends when the proxy closes its side. */
    close() {
      listener.close();
    },
  };
}

/**
 * Sends `data` through the proxy on `addr` and checks every byte that comes
 * back, read slowly, so the proxy has to queue on that side too.
 */
async function roundTrip(addr: Deno.NetAddr, data: Uint8Array, seed: number): Promise<void> {
  const conn = await dial(addr);
  const echoed = (async () => {
    const got = new Uint8Array(data.length);
    for (let total = 0, reads = 0; total < got.length; reads++) {
      const n = await conn.read(got.subarray(total, Math.min(got.length, total + 4096)));
      if (n === null) throw new Error(`end of input after ${total} of ${got.length} bytes`);
      total += n;
      if (reads % 16 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    return got;
  })();
  await writeInChunks(conn, data, seed);
  assertSameBytes(await echoed, data, "what came back through the proxy");
  conn.close();
}

/**
 * A forwarding protocol in the protocol API, as a user writes one: each
 * read goes to the other side as it is (a view of a read buffer), and each
 * side pauses the other's reading while it cannot keep up.
 */
function proxyProtocol(upstream: Deno.NetAddr, clientBackend: "deno" | "epoll" = "deno"): Protocol {
  let client: Transport;
  let server: Transport | null = null;
  const early: Uint8Array[] = [];
  return {
    connectionMade(t) {
      client = t;
      client.pauseReading(); // until the upstream connection is made
      connectTcp({ ...upstream, ...SMALL_SEND_BUFFER, backend: clientBackend }, () => ({
        connectionMade(u: Transport) {
          server = u;
          for (const chunk of early) u.write(chunk);
          client.resumeReading();
        },
        dataReceived: (data: Uint8Array) => client.write(data),
        eofReceived: () => (client.writeEof(), true),
        // Upstream cannot take more: stop reading what the client sends.
        pauseWriting: () => client.pauseReading(),
        resumeWriting: () => client.resumeReading(),
        connectionLost: () => client.close(),
      })).catch((error) => client.abort?.() ?? error);
    },
    dataReceived(data) {
      if (server === null) early.push(data.slice());
      else server.write(data);
    },
    eofReceived() {
      server?.writeEof();
      return true;
    },
    // The client cannot take more: stop reading what upstream sends.
    pauseWriting: () => server?.pauseReading(),
    resumeWriting: () => server?.resumeReading(),
    connectionLost: () => server?.close(),
  };
}

for (const backend of TCP_BACKENDS) {
  Deno.test(`forwarding (${backend}, protocol API): 8 MiB through a slow upstream, byte-exact`, async () => {
    const upstream = slowEchoUpstream();
    await using proxy = serveTcp(
      { port: 0, backend, ...SMALL_SEND_BUFFER },
      () => proxyProtocol(upstream.addr),
    );
    await Promise.all([
      roundTrip(proxy.addr, randomBytes(SIZE, 11), 11),
      roundTrip(proxy.addr, randomBytes(SIZE / 4, 12), 12),
    ]);
    await proxy.shutdown();
    upstream.close();
    await upstream.done;
  });

  Deno.test({
    name:
      `forwarding (${backend}, protocol API, upstream on epoll): 8 MiB through a slow upstream, byte-exact`,
    ignore: typeof getPoller() === "string",
    async fn() {
      const upstream = slowEchoUpstream();
      await using proxy = serveTcp(
        { port: 0, backend, ...SMALL_SEND_BUFFER },
        () => proxyProtocol(upstream.addr, "epoll"),
      );
      await roundTrip(proxy.addr, randomBytes(SIZE, 13), 13);
      await proxy.shutdown();
      upstream.close();
      await upstream.done;
    },
  });

  Deno.test(`forwarding (${backend}, stream API): borrowed views written to another writer, byte-exact`, async () => {
    const upstream = slowEchoUpstream();
    const options = { port: 0, backend, ...SMALL_SEND_BUFFER };
    await using proxy = serveTcpStreams(options, async (reader, writer) => {
      const up = await connectTcpStreams({ ...upstream.addr, ...SMALL_SEND_BUFFER });
      const back = (async () => {
        for (let view; (view = await up.reader.readBorrowed()) !== null;) {
          writer.write(view); // lent until up.reader's next read: write() must not keep it
          await writer.drain();
        }
      })();
      for (let view; (view = await reader.readBorrowed()) !== null;) {
        up.writer.write(view);
        await up.writer.drain();
      }
      up.writer.writeEof();
      await back;
      await up.writer.close();
    });
    await Promise.all([
      roundTrip(proxy.addr, randomBytes(SIZE, 21), 21),
      roundTrip(proxy.addr, randomBytes(SIZE / 4, 22), 22),
    ]);
    await proxy.shutdown();
    upstream.close();
    await upstream.done;
  });

  Deno.test(`writes (${backend}): a buffer overwritten right after write() goes out as it was`, async () => {
    const CHUNKS = 256;
    const CHUNK = 32 * 1024;
    await using server = serveTcp({ port: 0, backend }, () => ({
      connectionMade(t) {
        // One scratch buffer for every write, filled anew each time, to a peer that reads late.
        const scratch = new Uint8Array(CHUNK);
        for (let i = 0; i < CHUNKS; i++) {
          scratch.fill(i & 0xff);
          t.write(scratch);
        }
        t.close();
      },
    }));
    const conn = await dial(server.addr);
    const got = await readExactly(conn, CHUNKS * CHUNK);
    conn.close();
    for (let i = 0; i < CHUNKS; i++) {
      const chunk = got.subarray(i * CHUNK, (i + 1) * CHUNK);
      assert(chunk.every((byte) => byte === (i & 0xff)), `chunk ${i} holds another chunk's bytes`);
    }
    await waitFor(() => server.connections === 0, "the connection to close");
    assertEquals(server.counters.bytesSent, CHUNKS * CHUNK);
  });
}
