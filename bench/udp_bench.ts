/**
 * Micro-benchmarks of one datagram's path: a 512-byte datagram through a UDP
 * echo server in this process and back, on each datagram backend this
 * process can run (`deno` needs `--unstable-net`), with the reflection guard
 * on and off. The client is the same socket in every case, so the
 * differences are the server's. Run with `deno bench -A bench/` (add
 * `--unstable-net` for the `deno` backend).
 *
 * @module
 */

import { serveUdpEcho } from "../mod.ts";
import { type DatagramBackend, openDatagramSocket } from "../src/udp/socket.ts";
import { getPoller } from "../src/poll/_poller.ts";
import { hasUnstableNet } from "../src/_unstable.ts";

const epoll = typeof getPoller() !== "string";
const backends: DatagramBackend[] = [
  ...(epoll ? ["epoll" as const] : []),
  ...(hasUnstableNet() ? ["deno" as const] : []),
  "node",
];
const message = new Uint8Array(512).fill(1);
const client = await openDatagramSocket({ backend: epoll ? "epoll" : "node" });

for (const backend of backends) {
  for (const reflectionGuard of [true, false]) {
    const server = await serveUdpEcho({ backend, reflectionGuard });
    Deno.bench(
      `udp echo round trip, 512 bytes: ${backend} backend, guard ${reflectionGuard ? "on" : "off"}`,
      { group: "udp round trip", baseline: backend === backends[0] && reflectionGuard },
      async () => {
        await client.send(message, server.addr);
        const got = await client.receive();
        if (got === null || got[0].length !== message.length) throw new Error("no echo");
      },
    );
    // Close when the process ends; Deno.bench has no teardown hook.
    globalThis.addEventListener("unload", () => void server.shutdown());
  }
}
globalThis.addEventListener("unload", () => client.close());
