/**
 * Case 2, slow and stuck readers: a client sends 100 MiB and reads nothing.
 * The server must stop reading from it once its echo cannot be delivered
 * (flow control), keep its own memory bounded, and serve other clients
 * meanwhile; when the client finally reads, all 100 MiB come back in order.
 */

import { assert, assertEquals } from "@std/assert";
import { echoOf, writeAll } from "../_helpers.ts";
import { BACKENDS, figure, mib, Pattern, WatchedServer } from "./_harness.ts";

const BYTES = 100 * 1024 * 1024;
const CHUNK = 64 * 1024;
/** The most the server's memory may grow while the client is stuck. */
const MEMORY_BOUND = 32 * 1024 * 1024;
const pattern = new Pattern(11);

/** Resolves once `progress()` has not changed for `quietMs` (the writer is blocked). */
async function stalled(progress: () => number, quietMs = 500): Promise<void> {
  // The absence of progress is the event here, and only time can show it.
  for (let last = -1, quiet = 0; quiet < quietMs; quiet += 50) {
    if (progress() !== last) [last, quiet] = [progress(), 0];
    await new Promise((r) => setTimeout(r, 50));
  }
}

for (const backend of BACKENDS) {
  for (const api of ["protocol", "stream"]) {
    Deno.test(`slow reader (${api} API, ${backend}): 100 MiB unread, server memory bounded, others served`, async () => {
      await using server = await new WatchedServer(["--api", api, "--backend", backend]).ready();
      const baseline = server.memory().anon;
      const stuck = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      let written = 0;
      const writing = (async () => {
        while (written < BYTES) {
          const size = Math.min(CHUNK, BYTES - written);
          await writeAll(stuck, pattern.slice(written, size));
          written += size;
        }
        await stuck.closeWrite();
      })();

      await stalled(() => written);
      const writtenAtStall = written;
      assert(writtenAtStall < BYTES / 4, `the server took ${mib(writtenAtStall)} MiB unread`);
      // Others are served while the stuck client holds its connection.
      for (let i = 0; i < 100; i++) {
        assertEquals(await echoOf(server.port, `other ${i}`), `other ${i}`);
      }
      const { anon: anonStuck } = server.memory();
      assert(
        anonStuck - baseline < MEMORY_BOUND,
        `the server's allocated memory grew ${mib(anonStuck - baseline)} MiB`,
      );

      // Now read: everything comes back, in order, and the writer finishes.
      const buffer = new Uint8Array(CHUNK);
      let received = 0;
      for (let n; (n = await stuck.read(buffer)) !== null;) {
        const bad = pattern.mismatch(buffer.subarray(0, n), received);
        if (bad >= 0) throw new Error(`byte ${received + bad} differs`);
        received += n;
      }
      await writing;
      stuck.close();
      assertEquals(received, BYTES);
      const { peak } = server.memory();
      const { code } = await server.stop();
      assertEquals(code, 0);
      figure(`slow-reader-${api}-${backend}`, {
        sent_mib: mib(BYTES),
        taken_before_stall_mib: mib(writtenAtStall),
        anon_growth_while_stuck_mib: mib(anonStuck - baseline),
        peak_rss_mib: mib(peak),
        others_served: 100,
        bytes_lost: BYTES - received,
      });
    });
  }
}
