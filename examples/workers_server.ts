/**
 * A protocol server on every core: the same module runs as the main
 * program and in each worker of a pool.
 *
 * Run it:   deno run -A examples/workers_server.ts [port] [workers]    (default 8888, one per CPU)
 * Try it:   nc 127.0.0.1 8888     (it tells which worker took the connection, then echoes)
 *
 * One event loop serves one core. To use more, run one loop per core, each
 * listening on the same port with SO_REUSEPORT: the kernel hands each new
 * connection to one of the listeners, by a hash of its addresses. Here the
 * loops are Web Workers of one process, started by `startWorkers`; each
 * calls `serveInWorker` with the servers it runs. A worker that dies is
 * started again; Ctrl-C drains them all.
 */

import { serveTcp, type Transport } from "../mod.ts";
import { inPoolWorker, serveInWorker, startWorkers } from "../src/workers/mod.ts";

const encoder = new TextEncoder();

if (inPoolWorker()) {
  // In a worker: listen on the port the pool gives, beside the other workers.
  serveInWorker<{ port: number }>(({ index, data }) => [
    serveTcp({ port: data.port, reusePort: true }, () => {
      let transport: Transport;
      return {
        connectionMade(t: Transport) {
          transport = t;
          t.write(encoder.encode(`worker ${index} here\n`));
        },
        dataReceived(data: Uint8Array) {
          transport.write(data);
        },
      };
    }),
  ]);
} else {
  // The main program: start the pool and wait for Ctrl-C.
  const port = Number(Deno.args[0] ?? 8888);
  const count = Deno.args[1] === undefined ? "auto" : Number(Deno.args[1]);
  const pool = await startWorkers(import.meta.url, {
    count,
    // Worker 0 listens first; with port 0 the others join it on the port it was given.
    data: (_index, first) => ({ port: first?.[0].addr.port ?? port }),
  });
  const { hostname, port: actual } = pool.listeners[0].addr;
  console.log(`Serving on ${hostname}:${actual} in ${pool.size} workers`);
  Deno.addSignalListener("SIGINT", async () => {
    const workers = await pool.shutdown();
    for (const { index, servers } of workers) {
      console.log(`worker ${index}: ${servers[0]?.counters.accepted ?? 0} connections`);
    }
    Deno.exit(0);
  });
}
