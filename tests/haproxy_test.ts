/**
 * The server program behind HAProxy (Debian's `haproxy`), configured by the
 * README's `haproxy.cfg` block as written: two servers, each on two workers
 * with `--proxy-protocol`, balanced round robin with `send-proxy-v2` and
 * health checks every 200 ms. Echo byte-exact through it, the client's own
 * address in the servers' log, checks that keep both UP and log nothing
 * wrong, and one server stopped under load. Skipped where haproxy is not
 * installed (CI installs it).
 */

import { assert, assertEquals, assertMatch } from "@std/assert";
import {
  assertSameBytes,
  decode,
  encode,
  randomBytes,
  readExactly,
  readToEnd,
  writeAll,
  writeInChunks,
} from "./_helpers.ts";
import { installed } from "./_programs.ts";
import { WatchedServer } from "./stress/_harness.ts";
import {
  complaints,
  echoFrom,
  failover,
  Haproxy,
  healthChecks,
  ssListeners,
} from "./_balancers.ts";

const ignore = !Haproxy.available || !installed("socat") || !installed("ss");
if (ignore) console.warn("haproxy_test.ts skipped: haproxy, socat or ss is not installed");

/** The servers' flags, as the README runs them (on port 0). */
export const SERVER_ARGS = [
  "--workers",
  "2",
  "--proxy-protocol",
  "--proxy-from",
  "127.0.0.1",
  "--log-level",
  "info",
];

/** Two servers and HAProxy in front of them, both servers UP. */
async function balanced(): Promise<
  { servers: [WatchedServer, WatchedServer]; haproxy: Haproxy } & AsyncDisposable
> {
  const servers: [WatchedServer, WatchedServer] = [
    new WatchedServer(SERVER_ARGS),
    new WatchedServer(SERVER_ARGS),
  ];
  let haproxy: Haproxy | undefined;
  const dispose = async () => {
    await haproxy?.[Symbol.asyncDispose]();
    await Promise.all(servers.map((s) => s[Symbol.asyncDispose]()));
  };
  try {
    await Promise.all(servers.map((s) => s.ready()));
    haproxy = await new Haproxy([servers[0].port, servers[1].port]).ready();
    // Each server has answered checks: HAProxy starts servers UP, checks may take them DOWN.
    for (const server of servers) {
      await waitUntil(() => healthChecks(server.logSoFar) >= 2, "two health checks");
    }
    await haproxy.until(
      (stats) => stats.get("s1")?.status === "UP" && stats.get("s2")?.status === "UP",
      "both servers UP",
    );
    return { servers, haproxy, [Symbol.asyncDispose]: dispose };
  } catch (error) {
    await dispose();
    throw error;
  }
}

async function waitUntil(ok: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test({
  name: "haproxy: byte-exact echo, the client's address, checks that keep both servers UP",
  ignore,
  async fn() {
    await using lb = await balanced();
    const { servers, haproxy } = lb;
    // --workers 2: two listeners on each server's port, as the kernel shows them.
    assertEquals(ssListeners(servers[0].port).length, 2, "ss -ltn");

    // 1 MB of random bytes in random chunks, byte-exact.
    const big = randomBytes(1_000_000, 17);
    {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: haproxy.port });
      const [, echoed] = await Promise.all([
        writeInChunks(conn, big, 5),
        readExactly(conn, big.length),
      ]);
      await conn.closeWrite();
      assertEquals((await readToEnd(conn)).length, 0);
      conn.close();
      assertSameBytes(echoed, big, "1 MB through haproxy");
    }
    // Many small messages, each answered before the next, on a few connections.
    for (let c = 0; c < 4; c++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: haproxy.port });
      for (let i = 0; i < 100; i++) {
        const message = encode(`message ${c}.${i}\n`);
        await writeAll(conn, message);
        assertEquals(decode(await readExactly(conn, message.length)), decode(message));
      }
      conn.close();
    }
    // Clients on another loopback address are seen as that address, on both servers.
    for (let i = 0; i < 4; i++) {
      const text = `from 127.0.0.5, number ${i}`;
      assertEquals(decode(await echoFrom("127.0.0.5", haproxy.port, encode(text))), text);
    }

    // Several more check intervals: still UP, no check failed.
    const checks = servers.map((s) => healthChecks(s.logSoFar));
    for (const [i, server] of servers.entries()) {
      await waitUntil(() => healthChecks(server.logSoFar) >= checks[i] + 5, "five more checks");
    }
    const stats = await haproxy.stats();
    for (const name of ["s1", "s2"]) {
      const stat = stats.get(name)!;
      assertEquals(stat.status, "UP", name);
      assertMatch(stat.checkStatus, /^(\* )?L4OK/, name); // "* ": a check is running now
      assertEquals(stat.checkFailures, 0, `${name}: failed checks`);
      assertEquals(stat.downTransitions, 0, `${name}: went DOWN`);
    }

    const logs: string[] = [];
    for (const server of servers) {
      const { code, log } = await server.stop();
      assertEquals(code, 0);
      logs.push(log);
      assertEquals(complaints(log), [], "a server behind haproxy logged a warning or an error");
      // Checks are accepted connections, neither refused nor untrusted.
      assertMatch(
        log,
        /All workers on tcp 127\.0\.0\.1:\d+ stopped: \{ accepted: \d+, refused: 0, .*proxyRefused: 0, untrusted: 0\b/,
      );
      assertMatch(log, /Connection made with 127\.0\.0\.5:\d+ through 127\.0\.0\.1:\d+/);
    }
    const all = logs.join("\n");
    assertEquals(all.match(/Connection made with 127\.0\.0\.5:/g)?.length, 4);
    // The 1 MB and the small messages came from 127.0.0.1, through haproxy's own connections.
    assert(healthChecks(all) >= 10);
  },
});

Deno.test({
  name: "haproxy: a server stopped under load is taken out; the other loses no byte",
  ignore,
  async fn() {
    await using lb = await balanced();
    const { servers, haproxy } = lb;
    const result = await failover(haproxy, servers, 8, 20);
    assertEquals(result.stoppedExitCode, 0);
    assert(result.survivors > 0 && result.moved > 0, JSON.stringify(result));
    assertEquals(result.survivorsCutShort, [], "a connection on the other server was cut");
    assertEquals(result.survivorBytesLost, 0);
    assertEquals(result.movedToSurvivor, result.moved, "a moved connection went to s1 again");
    assertEquals(result.movedCutShort, []);
    assertEquals(result.movedBytesLost, 0);
    assertEquals(result.newConnectionErrors, [], "new connections after the stop failed");
    assert(result.markedDownMs < 5_000, `marked DOWN after ${result.markedDownMs} ms`);
    assertEquals(complaints(result.stoppedLog), []);
    const { code, log } = await servers[1].stop();
    assertEquals(code, 0);
    assertEquals(complaints(log), []);
    assertMatch(log, /proxyRefused: 0, untrusted: 0\b[^}]*\}; accepted by worker/);
  },
});
