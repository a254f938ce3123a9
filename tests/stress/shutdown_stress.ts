/**
 * Case 5, shutdown under load: SIGTERM while 100 connections are busy. The
 * server must stop accepting, send every echo it has taken in, exit 0 within
 * a bound, and no client may see an echo cut short by a clean close: an
 * echo ends whole, or the connection ends with an error (a reset).
 *
 * Judged from each client's own socket: a client that sent a message and
 * got a clean close with no echo waits for its socket's pending error
 * (SO_ERROR). A message that reached the server after it closed (or that it
 * never read) makes the server's kernel reset the connection, without the
 * client sending anything more; a message the server read and dropped does
 * not, and the socket stays quiet: a silent drop.
 */

import { assert, assertEquals } from "@std/assert";
import { prng, writeAll } from "../_helpers.ts";
import { BACKENDS, figure, Pattern, WatchedServer } from "./_harness.ts";
import { requireLibc } from "../../src/libc/_libc.ts";
import { identify } from "../../src/sockets/_fd.ts";
import { locateSocketFd } from "../../src/sockets/_locate.ts";

const libc = requireLibc("read a socket's pending error");
const SOL_SOCKET = 1;
const SO_ERROR = 4;
const socketError = new Int32Array(1);
const errorLength = new Uint32Array(1);
/** How long a refused message's reset may take to arrive. */
const PROBE_MS = 2000;

const CONNECTIONS = 100;
const EXIT_BOUND_MS = 5000;
const pattern = new Pattern(5);

/** How one busy connection ended. */
interface Outcome {
  echoes: number;
  /** Bytes of the last echo received before the end, and the size of that message. */
  partial: number;
  size: number;
  ending:
    | "refused after the close"
    | "error"
    | "truncated by a clean close"
    | "dropped silently";
}

/**
 * After a clean close that answered nothing of a message we sent: did the
 * server's kernel reset the connection in answer to it (refused), or does
 * the socket stay quiet (the server took the message in and dropped it)?
 * The deno backend closes its descriptor a moment after its FIN, so the
 * reset can take that long to come.
 */
async function probe(fd: number): Promise<Outcome["ending"]> {
  for (const end = performance.now() + PROBE_MS; performance.now() < end;) {
    errorLength[0] = 4;
    libc.symbols.getsockopt(fd, SOL_SOCKET, SO_ERROR, socketError, errorLength);
    if (socketError[0] !== 0) return "refused after the close";
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return "dropped silently";
}

/** Sends random-sized messages and reads each whole echo, until the server ends the connection. */
async function busy(port: number, seed: number, started: () => void): Promise<Outcome> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  // Found while surely connected: the descriptor of our own socket, to read its pending error.
  const fd = locateSocketFd(libc, identify(conn));
  if (fd === null) throw new Error("the client's own descriptor was not found");
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
          const ending = received > 0 ? "truncated by a clean close" : await probe(fd);
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

for (const backend of BACKENDS) {
  for (const api of ["protocol", "stream"]) {
    Deno.test(`shutdown (${api} API, ${backend}): SIGTERM with ${CONNECTIONS} busy connections flushes and exits 0`, async () => {
      await using server = await new WatchedServer(["--api", api, "--backend", backend]).ready();
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
      const dropped = ended.filter((o) => o.ending === "dropped silently");
      assertEquals(dropped, [], "messages the server took in and never answered");
      const count = (ending: Outcome["ending"]) => ended.filter((o) => o.ending === ending).length;
      figure(`shutdown-${api}-${backend}`, {
        busy_connections: CONNECTIONS,
        echoes_before_signal_and_during: ended.reduce((a, o) => a + o.echoes, 0),
        exit_ms: ms.toFixed(0),
        exit_code: code,
        server_bytes_read: bytes[1],
        server_bytes_echoed: bytes[2],
        refused_after_the_close: count("refused after the close"),
        ended_with_reset: count("error"),
        truncated_without_error: truncated.length,
        dropped_silently: dropped.length,
      });
    });
  }
}
