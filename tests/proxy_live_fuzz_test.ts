/**
 * Seeded PROXY protocol headers against the live server program: valid ones
 * followed by data, cut short, valid prefixes followed by garbage, v2 lengths
 * past the data and of the greatest size, mutations, random bytes, prefixes
 * left open until `--proxy-timeout`. On one event loop and on two workers.
 * The server must echo exactly what follows a whole header, never a byte for
 * an invalid one, end every connection, leak no descriptor, keep serving and
 * exit 0 with its counters matching what the clients saw.
 */

import { assertEquals, assertMatch } from "@std/assert";
import { complaints } from "./_balancers.ts";
import { fuzzLiveServer } from "./_proxy_live_fuzz.ts";
import { WatchedServer } from "./stress/_harness.ts";
import { CLIENT, run } from "./_programs.ts";

const ATTEMPTS = 300;

for (const workers of [[], ["--workers", "2"]]) {
  Deno.test(
    `live fuzz: ${ATTEMPTS} seeded PROXY headers against ./server --proxy-protocol ${
      workers.join(" ")
    }`.trim(),
    async () => {
      await using server = await new WatchedServer([
        "--proxy-protocol",
        "--proxy-timeout",
        "1",
        "--log-level",
        "debug",
        ...workers,
      ]).ready();
      const result = await fuzzLiveServer(server, ATTEMPTS, 0x11fe + workers.length);
      assertEquals(result.wrong, []);
      assertEquals(result.echoedForInvalid, 0);
      assertEquals(result.fdsAfter, result.fdsBefore, "descriptors left open");
      // Each kind was tried, and both outcomes were seen.
      assertEquals(Object.keys(result.kinds).length, 10, JSON.stringify(result.kinds));
      if (result.refused < ATTEMPTS / 3 || result.echoed < ATTEMPTS / 10) {
        throw new Error(`a one-sided run: ${JSON.stringify(result)}`);
      }
      // Still serving: a header and data from the client program.
      const client = await run(CLIENT, [
        "--port",
        String(server.port),
        "--send-proxy",
        "v2",
        "--message",
        "still here",
        "--check",
      ]);
      assertEquals(client.code, 0, client.stderr);
      assertEquals(client.stdout, "still here\n");
      const { code, log } = await server.stop();
      assertEquals(code, 0);
      assertEquals(complaints(log), [], "bad headers are the peer's fault: debug, not warnings");
      // The server counted as refused exactly the connections that got nothing back.
      const line = workers.length ? /All workers on tcp [^{]*\{([^}]*)\}/ : /stopped: \{([^}]*)\}/;
      const counters = log.match(line)?.[1] ?? "";
      assertMatch(counters, new RegExp(`proxyRefused: ${result.refused},`));
      // Accepted and served: every connection but those refused for their header.
      assertMatch(counters, new RegExp(`accepted: ${ATTEMPTS + 2 - result.refused},`));
    },
  );
}
