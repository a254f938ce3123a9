/**
 * The server-wide budget for buffered bytes (`maxBuffered`): no client
 * behaviour makes a server hold more than its budget plus a bounded slack,
 * and clients whose bytes pass straight through are served meanwhile.
 */

import { assert, assertEquals, assertThrows } from "@std/assert";
import { DEFAULT_MAX_BUFFERED, DEFAULT_READ_BUFFER_SIZE, TCP_BACKENDS } from "../src/tcp/mod.ts";
import { serveEcho, serveTcpStreams } from "../mod.ts";
import { type BudgetHolder, BufferBudget, SMALL_HOLDING } from "../src/core/budget.ts";
import { decode, dial, encode, readExactly, waitFor, writeAll } from "./_helpers.ts";

const BUDGET = 512 * 1024;
const CLIENTS = 8;
/**
 * The read that crosses the budget (the epoll backend's largest), and one
 * read per connection that was in flight when the budget ran out (the deno
 * backend's reads are issued ahead, up to 64 KiB).
 */
const SLACK = 256 * 1024 + CLIENTS * DEFAULT_READ_BUFFER_SIZE;

/** A holder for the budget's unit tests. */
function holder(): BudgetHolder & { paused: boolean } {
  return {
    held: 0,
    paused: false,
    isReading() {
      return !this.paused;
    },
    pauseForBudget() {
      this.paused = true;
    },
    resumeForBudget() {
      this.paused = false;
    },
  };
}

Deno.test("budget: past the limit the largest holders pause first; small holders never", () => {
  const K = 100_000; // holdings well above SMALL_HOLDING
  const holders = [holder(), holder(), holder(), holder()];
  const budget = new BufferBudget(10 * K, () => holders);
  budget.charge(holders[0], 5 * K);
  budget.charge(holders[1], 3 * K);
  budget.charge(holders[2], 1.5 * K);
  budget.charge(holders[3], SMALL_HOLDING);
  assertEquals(budget.spent, false);
  budget.charge(holders[2], K); // over the limit
  assertEquals(budget.spent, true);
  // Readers may keep 3/4 of what is left: the largest pauses; a small holding never does.
  assertEquals(holders.map((h) => h.paused), [true, false, false, false]);
  budget.charge(holders[1], 4 * K); // the next largest reader grows: it pauses too
  assertEquals(holders.map((h) => h.paused), [true, true, false, false]);
  // Draining to 3/4 of the limit resumes them all.
  budget.charge(holders[0], -5 * K);
  budget.charge(holders[1], -6 * K);
  assertEquals(holders.map((h) => h.paused), [false, false, false, false]);
  const small = SMALL_HOLDING;
  assertEquals([budget.used, budget.peak, budget.spent], [
    3.5 * K + small,
    14.5 * K + small,
    false,
  ]);
  budget.release(holders[2]);
  assertEquals([budget.used, holders[2].held], [K + small, 0]);
});

Deno.test("budget: a holder paused while it held a lot reads again once it holds nothing", () => {
  const [big, other] = [holder(), holder()];
  const budget = new BufferBudget(1_000_000, () => [big, other]);
  big.paused = true; // paused for another reason: it counts as not reading
  budget.charge(big, 1_200_000);
  budget.charge(other, 100_000); // over, and the only reader: paused
  assertEquals(other.paused, true);
  budget.charge(other, -100_000); // its writes went out; the budget is still spent
  assertEquals([other.paused, budget.spent], [false, true]);
});

Deno.test("budget: maxBuffered is checked up front and shown on the default", () => {
  assertThrows(
    () => serveEcho({ port: 0, maxBuffered: 0 }),
    RangeError,
    "Cannot use maxBuffered 0:",
  );
  assertEquals(DEFAULT_MAX_BUFFERED, 64 << 20);
});

/** Writes `data` on `conn` in the background; closing `conn` ends it quietly. */
function writeBehind(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  return writeAll(conn, data).catch(() => {});
}

for (const backend of TCP_BACKENDS) {
  Deno.test(`budget (${backend}): an until flood stays within the budget while another client is served`, async () => {
    await using server = serveEcho({ port: 0, backend, mode: "until", maxBuffered: BUDGET });
    const flood = await Promise.all(Array.from({ length: CLIENTS }, () => dial(server.addr)));
    // Each sends 2 MiB and never the terminator: together 16 times the budget.
    const writes = flood.map((conn, i) => writeBehind(conn, new Uint8Array(2 << 20).fill(65 + i)));
    await waitFor(() => server.counters.bufferedPeak > BUDGET, "the budget to be spent");
    await waitFor(() => server.counters.budgetPauses >= CLIENTS / 2, "the flood to be paused");
    const other = await dial(server.addr);
    await writeAll(other, encode("served meanwhile quit\n"));
    assertEquals(decode(await readExactly(other, 22)), "served meanwhile quit\n");
    other.close();
    const { bufferedPeak } = server.counters;
    assert(bufferedPeak <= BUDGET + SLACK, `peak ${bufferedPeak} over ${BUDGET} + ${SLACK}`);
    // A paused connection cannot see its peer leave (TCP delivers the close after the data
    // it is not reading): the server's shutdown (or an idle timeout) ends them.
    await server.shutdown();
    for (const conn of flood) conn.close();
    await Promise.all(writes);
    assertEquals(server.counters.buffered, 0, "bytes still counted after every connection closed");
  });

  Deno.test(`budget (${backend}): peers that never read are paused at the budget; others are served`, async () => {
    await using server = serveEcho({
      port: 0,
      backend,
      maxBuffered: BUDGET,
      sendBufferSize: 4096,
      // Per connection, up to 1 MiB before flow control pauses it: only the budget is lower.
      highWaterMark: 1 << 20,
      shutdownTimeout: 100, // the stuck peers never take their echoes: abort them
    });
    const stuck = await Promise.all(Array.from({ length: CLIENTS }, () => dial(server.addr)));
    const writes = stuck.map((conn) => writeBehind(conn, new Uint8Array(8 << 20)));
    await waitFor(() => server.counters.bufferedPeak > BUDGET, "the budget to be spent");
    const other = await dial(server.addr);
    for (let i = 0; i < 10; i++) {
      await writeAll(other, encode(`ping ${i}`));
      assertEquals(decode(await readExactly(other, 6)), `ping ${i}`);
    }
    other.close();
    const { bufferedPeak } = server.counters;
    assert(bufferedPeak <= BUDGET + SLACK, `peak ${bufferedPeak} over ${BUDGET} + ${SLACK}`);
    await server.shutdown();
    for (const conn of stuck) conn.close();
    await Promise.all(writes);
    assertEquals(server.counters.buffered, 0);
  });

  Deno.test(`budget (${backend}): stream handlers buffering with readExactly stay within the budget`, async () => {
    const BIG = 4 << 20;
    await using server = serveTcpStreams(
      { port: 0, backend, maxBuffered: BUDGET, shutdownTimeout: 100 },
      async (reader, writer) => {
        const line = decode((await reader.readLine())!);
        if (line === "big\n") await reader.readExactly(BIG);
        writer.write(`done ${line}`);
      },
    );
    const big = await Promise.all(Array.from({ length: CLIENTS / 2 }, () => dial(server.addr)));
    const writes = big.map(async (conn) => {
      await writeAll(conn, encode("big\n"));
      await writeBehind(conn, new Uint8Array(BIG));
    });
    await waitFor(() => server.counters.bufferedPeak > BUDGET, "the budget to be spent");
    const other = await dial(server.addr);
    await writeAll(other, encode("small\n"));
    assertEquals(decode(await readExactly(other, 11)), "done small\n");
    other.close();
    const { bufferedPeak } = server.counters;
    assert(bufferedPeak <= BUDGET + SLACK, `peak ${bufferedPeak} over ${BUDGET} + ${SLACK}`);
    await server.shutdown();
    for (const conn of big) conn.close();
    await Promise.all(writes);
    assertEquals(server.counters.buffered, 0);
  });
}

for (const backend of TCP_BACKENDS) {
  Deno.test(`budget (${backend}): partial lines count the buffers they hold, not just their bytes`, async () => {
    const PARTIAL = 64;
    await using server = serveTcpStreams(
      { port: 0, backend, maxBuffered: BUDGET },
      async (reader, writer) => {
        const line = await reader.readLine();
        if (line !== null) writer.write(line);
      },
    );
    // Each sends one byte of a line it never finishes: a reader buffer each, for one byte.
    const conns = await Promise.all(Array.from({ length: PARTIAL }, () => dial(server.addr)));
    await Promise.all(conns.map((conn) => writeAll(conn, encode("x"))));
    await waitFor(() => server.counters.bufferedPeak > BUDGET, "the budget to be spent");
    const { buffered, bufferedPeak } = server.counters;
    assert(buffered > 100 * PARTIAL, `${buffered} bytes counted for ${PARTIAL} one-byte lines`);
    assert(bufferedPeak <= BUDGET + SLACK, `peak ${bufferedPeak} over ${BUDGET} + ${SLACK}`);
    // Those lines still complete, and the budget gives back what they held.
    await Promise.all(conns.map(async (conn) => {
      await writeAll(conn, encode("\n"));
      assertEquals(decode(await readExactly(conn, 2)), "x\n");
      conn.close();
    }));
    await waitFor(() => server.connections === 0, "the connections to close");
    assertEquals(server.counters.buffered, 0);
  });
}
