/**
 * Servers on every core: {@linkcode startWorkers} runs a module in a pool of
 * Web Workers, each serving on `reusePort` sockets of its own, and
 * {@linkcode serveInWorker} is what that module calls. The server program's
 * `--workers N` is built on it.
 *
 * @example main.ts and worker.ts
 * ```ts ignore
 * // worker.ts
 * import { serveEcho } from "@x/echo";
 * import { serveInWorker } from "@x/echo/workers";
 *
 * serveInWorker<{ port: number }>(({ data }) => [serveEcho({ port: data.port, reusePort: true })]);
 *
 * // main.ts
 * import { startWorkers } from "@x/echo/workers";
 *
 * const pool = await startWorkers(new URL("./worker.ts", import.meta.url), {
 *   count: "auto",
 *   data: (index, first) => ({ port: first?.[0].addr.port ?? 8888 }),
 * });
 * Deno.addSignalListener("SIGINT", () => pool.shutdown());
 * console.log(await pool.finished);
 * ```
 *
 * @module
 */

export {
  startWorkers,
  type WorkerCounters,
  type WorkerListener,
  type WorkerPool,
  type WorkerPoolOptions,
} from "./pool.ts";
export {
  inPoolWorker,
  serveInWorker,
  type WorkerContext,
  type WorkerServer,
  type WorkerServerCounters,
} from "./worker.ts";
