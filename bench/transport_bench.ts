/**
 * Micro-benchmarks of the transport hot path: one request of 1,000 bytes
 * through an echo server in this process and back, on each backend and API.
 * The client is a plain `Deno.TcpConn`, the same in every case, so the
 * differences are the server's. Run with `deno bench -A bench/`.
 *
 * @module
 */

import { serveEcho } from "../mod.ts";
import { TCP_BACKENDS } from "../src/tcp/mod.ts";

const message = new Uint8Array(1_000).fill(1);
const answer = new Uint8Array(64 * 1024);

for (const backend of TCP_BACKENDS) {
  for (const api of ["protocol", "stream"] as const) {
    const server = serveEcho({ port: 0, backend, api });
    const conn = await Deno.connect({ port: server.addr.port });
    conn.setNoDelay(true);
    Deno.bench(`echo round trip, 1,000 bytes: ${api} API, ${backend} backend`, {
      group: "round trip",
      baseline: backend === "epoll" && api === "protocol",
    }, async () => {
      await conn.write(message);
      for (let got = 0; got < message.length;) {
        const n = await conn.read(answer);
        if (n === null) throw new Error("the server closed the connection");
        got += n;
      }
    });
    // Close when the process ends; Deno.bench has no teardown hook.
    globalThis.addEventListener("unload", () => {
      conn.close();
      server.shutdown();
    });
  }
}
