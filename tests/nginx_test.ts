/**
 * The server program behind nginx's stream proxy, configured by the README's
 * `nginx.conf` block as written: two `--proxy-protocol` servers upstream,
 * `proxy_protocol on` (a v1 header on each connection). Echo through it, and
 * the client's own address in the servers' log. Skipped where nginx or its
 * stream module is not installed (CI installs both).
 */

import { assertEquals, assertMatch } from "@std/assert";
import { assertSameBytes, decode, encode, randomBytes, readToEnd, writeAll } from "./_helpers.ts";
import { installed } from "./_programs.ts";
import { WatchedServer } from "./stress/_harness.ts";
import { complaints, echoFrom, Nginx, nginxWithStream } from "./_balancers.ts";

const ignore = !nginxWithStream() || !installed("socat");
if (ignore) console.warn("nginx_test.ts skipped: nginx with its stream module, or socat, missing");

const ARGS = ["--proxy-protocol", "--proxy-from", "127.0.0.1", "--log-level", "info"];

Deno.test({
  name: "nginx: echo through its stream proxy, and the client's address with it",
  ignore,
  async fn() {
    await using s1 = await new WatchedServer(ARGS).ready();
    await using s2 = await new WatchedServer(ARGS).ready();
    await using nginx = await new Nginx([s1.port, s2.port]).ready();
    // The readiness probe was a connection nginx passed on: the servers saw its header.

    const big = randomBytes(300_000, 23);
    for (let i = 0; i < 2; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: nginx.port });
      const [, echoed] = await Promise.all([
        writeAll(conn, big).then(() => conn.closeWrite()),
        readToEnd(conn),
      ]);
      conn.close();
      assertSameBytes(echoed, big, "through nginx");
    }
    for (let i = 0; i < 4; i++) {
      const text = `from 127.0.0.5 through nginx, ${i}`;
      assertEquals(decode(await echoFrom("127.0.0.5", nginx.port, encode(text))), text);
    }

    const logs: string[] = [];
    for (const server of [s1, s2]) {
      const { code, log } = await server.stop();
      assertEquals(code, 0);
      assertEquals(complaints(log), []);
      // Round robin: each server had connections, every one with a header, from a trusted proxy.
      assertMatch(log, /stopped: \{ accepted: [1-9]\d*, .*proxyRefused: 0, untrusted: 0\b/);
      logs.push(log);
    }
    const all = logs.join("\n");
    assertEquals(
      all.match(/Connection made with 127\.0\.0\.5:\d+ through 127\.0\.0\.1:/g)?.length,
      4,
    );
    assertEquals(
      all.match(/Connection made with 127\.0\.0\.1:\d+ through 127\.0\.0\.1:/g)?.length,
      3,
    );
    assertEquals(nginx.log.match(/\[(emerg|alert|crit|error)\]/g), null, nginx.log);
  },
});
