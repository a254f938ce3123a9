/**
 * Case 1, integrity under load: 1,000 connections at once, each sending
 * 1 MiB in random-sized chunks with random pauses while reading its echo;
 * every byte must come back, in order, through both APIs.
 */

import { assertEquals } from "@std/assert";
import { prng, writeAll } from "../_helpers.ts";
import { assertLogged, BACKENDS, figure, mib, Pattern, settle, WatchedServer } from "./_harness.ts";

const CONNECTIONS = 1000;
const BYTES = 1024 * 1024;
const pattern = new Pattern();

/** One connection: sends BYTES from the pattern at `offset`, checks every byte echoed. */
async function exchange(port: number, offset: number, seed: number): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const random = prng(seed);
  try {
    const sending = (async () => {
      for (let sent = 0; sent < BYTES;) {
        const size = Math.min(BYTES - sent, 1 + Math.floor(random() * random() * 65536));
        await writeAll(conn, pattern.slice(offset + sent, size));
        sent += size;
        if (random() < 0.05) await new Promise((r) => setTimeout(r, random() * 20));
      }
      await conn.closeWrite();
    })();
    const buffer = new Uint8Array(65536);
    let received = 0;
    for (let n; (n = await conn.read(buffer)) !== null;) {
      const bad = pattern.mismatch(buffer.subarray(0, n), offset + received);
      if (bad >= 0) throw new Error(`byte ${received + bad} of connection ${seed} differs`);
      received += n;
    }
    await sending;
    return received;
  } finally {
    conn.close();
  }
}

for (const backend of BACKENDS) {
  for (const api of ["protocol", "stream"]) {
    Deno.test(`integrity (${api} API, ${backend}): ${CONNECTIONS} connections x 1 MiB, every byte back in order`, async () => {
      await using server = await new WatchedServer([
        "--api",
        api,
        "--backlog",
        "2048",
        "--backend",
        backend,
      ]).ready();
      const fdsBefore = server.openIoFds();
      const start = performance.now();
      const received = await Promise.all(
        Array.from({ length: CONNECTIONS }, (_, i) => exchange(server.port, i * 7919, i + 1)),
      );
      const seconds = (performance.now() - start) / 1000;
      const total = received.reduce((a, b) => a + b, 0);
      assertEquals(received.filter((n) => n !== BYTES), [], "connections echoed short");
      const { peak } = server.memory();
      await settle(() => server.openIoFds() === fdsBefore); // the server closes after us
      const fdsAfter = server.openIoFds();
      const { code, log } = await server.stop();
      assertEquals(code, 0);
      assertLogged(log, `accepted: ${CONNECTIONS}, refused: 0`);
      assertEquals(fdsAfter, fdsBefore, "descriptors left open");
      figure(`integrity-${api}-${backend}`, {
        connections: CONNECTIONS,
        mib_each_way: mib(total),
        seconds: seconds.toFixed(1),
        peak_rss_mib: mib(peak),
        bytes_lost: CONNECTIONS * BYTES - total,
      });
    });
  }
}
