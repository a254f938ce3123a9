/**
 * Case 6, memory no client can run away with: 100 connections each send
 * 16 MiB to an `until` server and never the terminator (without a budget
 * the server would keep 800 MiB: 8 MiB each, the default until limit). The server must stay within its buffer
 * budget (`--max-buffered`, 64 MiB by default) plus its baseline, keep
 * serving another client meanwhile, and shut down cleanly.
 */

import { assert, assertEquals } from "@std/assert";
import { decode, encode, readExactly, writeAll } from "../_helpers.ts";
import { BACKENDS, figure, mib, WatchedServer } from "./_harness.ts";
import { SMALL_HOLDING, SPENT_BUDGET_READ } from "../../src/core/budget.ts";
import { DEFAULT_READ_BUFFER_SIZE } from "../../src/core/options.ts";

const CONNECTIONS = 100;
const EACH = 16 << 20;
const CHUNK = 256 * 1024;
const BUDGET = 64 << 20;
/**
 * What the server may hold past its budget (see `core/budget.ts`): the read
 * that crossed it, and per connection a small holding and one read, which
 * on the deno backend may have been issued, up to 64 KiB, before the budget
 * ran out.
 */
const HELD_SLACK = {
  epoll: 256 * 1024 + CONNECTIONS * (SMALL_HOLDING + SPENT_BUDGET_READ),
  deno: 256 * 1024 + CONNECTIONS * (SMALL_HOLDING + DEFAULT_READ_BUFFER_SIZE),
};
/** What resident memory may hold past that: the allocator's and V8's own slack. */
const RSS_SLACK = 24 << 20;

/**
 * Connects and sends `EACH` bytes without the terminator, counting what the
 * kernel took; `writing` settles once the connection ends.
 */
async function flood(
  port: number,
  sent: number[],
  i: number,
): Promise<{ conn: Deno.TcpConn; writing: Promise<void> }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const chunk = new Uint8Array(CHUNK).fill(0x61 + (i % 26));
  const writing = (async () => {
    for (let total = 0; total < EACH; total += CHUNK) {
      await writeAll(conn, chunk);
      sent[i] += CHUNK;
    }
  })().catch(() => {}); // ends when the connection is closed
  return { conn, writing };
}

/** Resolves once the total the clients got through stops growing for `quietMs`. */
async function stalled(total: () => number, quietMs = 1000): Promise<void> {
  let last = -1;
  let since = performance.now();
  while (performance.now() - since < quietMs) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    if (total() !== last) {
      last = total();
      since = performance.now();
    }
  }
}

for (const backend of BACKENDS) {
  Deno.test(`budget (${backend}): ${CONNECTIONS} until connections x 16 MiB without the terminator stay within the budget`, async () => {
    await using server = await new WatchedServer([
      "--mode",
      "until",
      "--backend",
      backend,
      "--backlog",
      "1024",
    ]).ready();
    const { rss: baseline, anon: anonBaseline } = server.memory();
    const sent = new Array<number>(CONNECTIONS).fill(0);
    const floods = await Promise.all(
      Array.from({ length: CONNECTIONS }, (_, i) => flood(server.port, sent, i)),
    );
    const total = () => sent.reduce((a, b) => a + b, 0);
    await stalled(total);
    // Most of this waits in the kernel's socket buffers (both ends, up to several MiB each).
    const takenAtStall = total();

    // Another client is served while the flood holds the budget.
    const start = performance.now();
    const other = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await writeAll(other, encode("served meanwhile quit\n"));
    assertEquals(decode(await readExactly(other, 22)), "served meanwhile quit\n");
    const servedMs = performance.now() - start;
    other.close();

    const { rss, peak, anon } = server.memory();
    const allowed = BUDGET + HELD_SLACK[backend];
    assert(
      anon - anonBaseline <= allowed + RSS_SLACK,
      `the server's allocated memory grew ${mib(anon - anonBaseline)} MiB past its baseline ` +
        `(budget ${mib(BUDGET)} MiB; resident memory ${mib(baseline)} → ${mib(rss)} MiB)`,
    );
    const { code, log } = await server.stop();
    for (const { conn } of floods) conn.close();
    await Promise.all(floods.map(({ writing }) => writing));
    assertEquals(code, 0);
    const peakHeld = Number(log.match(/bufferedPeak: (\d+)/)?.[1]);
    assert(peakHeld <= allowed, `held ${mib(peakHeld)} MiB at the peak, over ${mib(allowed)}`);
    figure(`budget-until-${backend}`, {
      connections: CONNECTIONS,
      sent_each_mib: mib(EACH),
      taken_before_stall_mib: mib(takenAtStall),
      budget_mib: mib(BUDGET),
      held_at_peak_mib: mib(peakHeld),
      rss_baseline_mib: mib(baseline),
      rss_while_held_mib: mib(rss),
      peak_rss_mib: mib(peak),
      peak_growth_mib: mib(peak - baseline),
      anon_growth_mib: mib(anon - anonBaseline),
      other_client_served_ms: servedMs.toFixed(0),
    });
  });
}
