/**
 * Case 5, shutdown under load: SIGTERM while 100 connections are busy. The
 * server must stop accepting, send every echo it has taken in, exit 0 within
 * a bound, and no client may see an echo cut short by a clean close: an
 * echo ends whole, or the connection ends with an error (a reset).
 */

import { assert, assertEquals } from "@std/assert";
import { prng, writeAll } from "../_helpers.ts";
import { figure, Pattern, WatchedServer } from "./_harness.ts";

const CONNECTIONS = 100;
const EXIT_BOUND_MS = 5000;
const pattern = new Pattern(5);

/** How one busy connection ended. */
interface Outcome {
  echoes: number;
  /** Bytes of the last echo received before the end, and the size of that message. */
  partial: number;
  size: number;
  ending: "clean between echoes" | "error" | "truncated by a clean close";
}

/** Sends random-sized messages and reads each whole echo, until the server ends the connection. */
async function busy(port: number, seed: number, started: () => void): Promise<Outcome> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const random = prng(seed);
  const buffer = new Uint8Array(65536);
  let echoes = 0;
  let position = seed * 104729;
  try {
    while (true) {
      const size = 1 + Math.floor(random() * 65536);
      await writeAll(conn, pattern.slice(position, size));
      let received = 0;
      while (received < size) {
        const n = await conn.read(buffer.subarray(0, Math.min(buffer.length, size - received)));
        if (n === null) {
          const ending = received === 0 ? "clean between echoes" : "truncated by a clean close";
          return { echoes, partial: received, size, ending };
        }
        if (pattern.mismatch(buffer.subarray(0, n), position + received) >= 0) {
          throw new Error(`connection ${seed}: corrupted echo`);
        }
        received += n;
      }
      position += size;
      if (++echoes === 10) started();
    }
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BrokenPipe) {
      return { echoes, partial: 0, size: 0, ending: "error" };
    }
    throw error;
  } finally {
    conn.close();
  }
}

for (const api of ["protocol", "stream"]) {
  Deno.test(`shutdown (${api} API): SIGTERM with ${CONNECTIONS} busy connections flushes and exits 0`, async () => {
    await using server = await new WatchedServer(["--api", api]).ready();
    let warmedUp = 0;
    const allBusy = Promise.withResolvers<void>();
    const outcomes = Array.from(
      { length: CONNECTIONS },
      (_, i) => busy(server.port, i + 1, () => ++warmedUp === CONNECTIONS && allBusy.resolve()),
    );
    await allBusy.promise; // every connection has had 10 echoes and is mid-exchange

    const { code, ms, log } = await server.stop("SIGTERM");
    const ended = await Promise.all(outcomes);
    assertEquals(code, 0, log.slice(-2000));
    assert(ms < EXIT_BOUND_MS, `exit took ${ms.toFixed(0)} ms`);
    // Every byte the server read, it echoed.
    const bytes = log.match(/bytesReceived: (\d+), bytesSent: (\d+)/);
    if (!bytes) throw new Error(`no byte counts in the log:\n${log.slice(-2000)}`);
    assertEquals(Number(bytes[2]), Number(bytes[1]), "bytes the server read but never echoed");
    const truncated = ended.filter((o) => o.ending === "truncated by a clean close");
    assertEquals(truncated, [], "echoes cut short without an error");
    const count = (ending: Outcome["ending"]) => ended.filter((o) => o.ending === ending).length;
    figure(`shutdown-${api}`, {
      busy_connections: CONNECTIONS,
      echoes_before_signal_and_during: ended.reduce((a, o) => a + o.echoes, 0),
      exit_ms: ms.toFixed(0),
      exit_code: code,
      server_bytes_read: bytes[1],
      server_bytes_echoed: bytes[2],
      closed_cleanly_between_echoes: count("clean between echoes"),
      ended_with_reset: count("error"),
      truncated_without_error: truncated.length,
    });
  });
}
