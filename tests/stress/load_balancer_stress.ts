/**
 * Case 10, behind a load balancer: failover through HAProxy (the README's
 * configuration) and seeded PROXY headers against the live server. Per
 * backend, each server on two workers.
 *
 * Failover: 32 connections echo in a closed loop through HAProxy over two
 * servers; one gets SIGTERM. Its connections end and open new ones, which must
 * reach the other; the other's connections must lose no byte; 100 new
 * connections opened once it has exited must all be echoed; HAProxy's time
 * to mark the stopped server DOWN is measured, and so are the 4 connections
 * opened while it shuts down (not held to anything: see RELIABILITY.md).
 *
 * Fuzzing: 2,000 headers (valid with data, cut short, valid prefixes then
 * garbage, v2 lengths past the data and of 65,535 bytes, mutations, random
 * bytes, prefixes left open until `--proxy-timeout 1`): nothing echoed for an
 * invalid header, descriptors back to their number, still serving, exit 0.
 */

import { assert, assertEquals } from "@std/assert";
import { complaints, failover, Haproxy } from "../_balancers.ts";
import { fuzzLiveServer } from "../_proxy_live_fuzz.ts";
import { echoOf, encode } from "../_helpers.ts";
import { assertLogged, BACKENDS, figure, WatchedServer } from "./_harness.ts";
import { encodeProxyHeader } from "../../src/proxy/mod.ts";
import { decode, readToEnd, writeAll } from "../_helpers.ts";

const STREAMS = 32;
const FRESH = 100;
const FUZZ = 2000;

/** The flags per backend: reusePort on Deno's own sockets needs --unstable-net. */
const denoFlags = (backend: string) => backend === "deno" ? ["--unstable-net"] : [];

for (const backend of BACKENDS) {
  Deno.test({
    name: `failover behind haproxy (${backend}): one server stopped under load`,
    ignore: !Haproxy.available,
    async fn() {
      const args = [
        "--workers",
        "2",
        "--backend",
        backend,
        "--proxy-protocol",
        "--proxy-from",
        "127.0.0.1",
        "--log-level",
        "info",
      ];
      await using s1 = new WatchedServer(args, { denoFlags: denoFlags(backend) });
      await using s2 = new WatchedServer(args, { denoFlags: denoFlags(backend) });
      await Promise.all([s1.ready(), s2.ready()]);
      await using haproxy = await new Haproxy([s1.port, s2.port]).ready();
      // Checks passed (on the deno backend they leave no "Connection made" line: see below).
      await haproxy.until(
        (stats) => [...stats.values()].every((stat) => stat.checkStatus.startsWith("L4OK")),
        "both servers' checks to pass",
      );
      const result = await failover(haproxy, [s1, s2], STREAMS, FRESH);
      const { code, log } = await s2.stop();
      assertEquals(result.stoppedExitCode, 0);
      assertEquals(code, 0);
      const errorsLogged = [...complaints(result.stoppedLog), ...complaints(log)];
      // No warning or error on either backend: HAProxy's checks (reset as soon as they are made)
      // are peers that left, not accept failures.
      assertEquals(errorsLogged, []);
      assertEquals(result.survivorsCutShort, []);
      assertEquals(result.survivorBytesLost, 0);
      assertEquals(result.movedToSurvivor, result.moved);
      assertEquals(result.movedCutShort, []);
      assertEquals(result.movedBytesLost, 0);
      assertEquals(result.newConnectionErrors, []);
      figure(`failover-${backend}`, {
        streams: STREAMS,
        streams_on_survivor: result.survivors,
        survivor_bytes_lost: result.survivorBytesLost,
        connections_moved: result.moved,
        moved_to_survivor: result.movedToSurvivor,
        moved_bytes_lost: result.movedBytesLost,
        marked_down_ms: result.markedDownMs,
        new_connections: result.newConnections,
        new_connections_failed: result.newConnectionsFailed,
        opened_during_shutdown: result.duringShutdown,
        during_shutdown_unanswered: result.duringShutdownFailed,
        server_errors_logged: errorsLogged.length,
        stopped_exit_code: result.stoppedExitCode,
      });
    },
  });

  Deno.test(`PROXY headers fuzzed against the live server (${backend}, 2 workers)`, async () => {
    await using server = await new WatchedServer([
      "--workers",
      "2",
      "--backend",
      backend,
      "--proxy-protocol",
      "--proxy-timeout",
      "1",
      "--log-level",
      "debug",
    ], { denoFlags: denoFlags(backend) }).ready();
    const result = await fuzzLiveServer(server, FUZZ, 0xf022 + backend.length);
    assertEquals(result.wrong, []);
    assertEquals(result.echoedForInvalid, 0);
    if (result.fdsAfter !== result.fdsBefore) {
      const fds = [...Deno.readDirSync(`/proc/${server.pid}/fd`)].map((e) => {
        try {
          return Deno.readLinkSync(`/proc/${server.pid}/fd/${e.name}`);
        } catch {
          return "?";
        }
      });
      console.log(JSON.stringify(result), fds.filter((l) => !l.startsWith("/")).sort().join(" "));
    }
    assertEquals(result.fdsAfter, result.fdsBefore, "descriptors left open");
    // Still serving a header and data.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    const source = { transport: "tcp" as const, hostname: "192.0.2.1", port: 1000 };
    const destination = { transport: "tcp" as const, hostname: "192.0.2.2", port: 2000 };
    await writeAll(conn, encodeProxyHeader({ version: 2, source, destination }));
    await writeAll(conn, encode("still here"));
    await conn.closeWrite();
    const alive = decode(await readToEnd(conn)) === "still here";
    conn.close();
    assert(alive, "the server stopped answering");
    // Without a header it answers nothing.
    assertEquals(await echoOf(server.port, "no header"), "");
    const { code, log } = await server.stop();
    assertEquals(code, 0);
    assertEquals(complaints(log), []);
    assertLogged(log, `proxyRefused: ${result.refused + 1},`);
    figure(`proxy-fuzz-${backend}`, {
      headers_tried: result.tried,
      refused: result.refused,
      echoed_whole_headers: result.echoed,
      echoed_for_invalid: result.echoedForInvalid,
      left_open_timed_out: result.timedOut,
      fds_before: result.fdsBefore,
      fds_after: result.fdsAfter,
      fds_leaked: result.fdsAfter - result.fdsBefore,
      server_alive: alive ? "yes" : "no",
      exit_code: code,
    });
  });
}
