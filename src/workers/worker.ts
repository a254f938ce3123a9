/**
 * The worker side of a worker pool (see {@linkcode startWorkers}): a module
 * the pool runs in each of its Web Workers calls
 * {@linkcode serveInWorker} with a function that starts its servers, each
 * on a `reusePort` socket, so the kernel spreads connections over the
 * workers. The pool then asks it for counters and tells it when to drain.
 *
 * @example worker.ts: an echo protocol on port 8888, in each worker
 * ```ts ignore
 * import { serveTcp } from "@x/echo";
 * import { serveInWorker } from "@x/echo/workers";
 *
 * serveInWorker<{ port: number }>(({ data }) => [
 *   serveTcp({ port: data.port, reusePort: true }, () => {
 *     let transport: { write(data: Uint8Array): void };
 *     return {
 *       connectionMade: (t) => void (transport = t),
 *       dataReceived: (data) => transport.write(data),
 *     };
 *   }),
 * ]);
 * ```
 *
 * @module
 */

import { closeIdlePoller, observePoller } from "../poll/_poller.ts";
import { isolateThread } from "../poll/_reclaim.ts";
import {
  type FromWorker,
  NAME_PREFIX,
  type ToWorker,
  type WorkerServerCounters,
  type WorkerStart,
} from "./_messages.ts";

export type { WorkerServerCounters } from "./_messages.ts";

/**
 * A server a worker runs: what {@linkcode serveInWorker} needs of it.
 * `TcpServer` and `UdpServer` are such servers.
 *
 * @example
 * ```ts
 * import { serveEcho } from "@x/echo";
 * import type { WorkerServer } from "@x/echo/workers";
 *
 * const server: WorkerServer = serveEcho({ port: 0 });
 * await server.shutdown();
 * ```
 */
export interface WorkerServer {
  /** Where it listens. */
  readonly addr: Deno.NetAddr;
  /** A snapshot of its counters: an object of numbers (and objects of numbers). */
  readonly counters: object;
  /** Drains it; a second call stops it at once. */
  shutdown(): Promise<void>;
  /** Resolves once it has stopped. */
  readonly finished: Promise<void>;
  /** A description passed on to the pool's `listeners` (such as a startup line's). */
  readonly label?: string;
}

/**
 * Where a worker stands in its pool, as {@linkcode serveInWorker}'s start
 * function gets it.
 *
 * @example
 * ```ts
 * import type { WorkerContext } from "@x/echo/workers";
 *
 * const describe = ({ index, data }: WorkerContext<{ port: number }>) =>
 *   `worker ${index} on port ${data.port}`;
 * ```
 */
export interface WorkerContext<T> {
  /** The worker's place in the pool, from 0; a restarted worker keeps its predecessor's. */
  index: number;
  /** The data the pool was given for this worker (see `WorkerPoolOptions.data`). */
  data: T;
}

/**
 * Whether this code runs in a worker of a pool (a Web Worker that
 * {@linkcode startWorkers} started).
 *
 * @example
 * ```ts
 * import { inPoolWorker } from "@x/echo/workers";
 *
 * console.log(inPoolWorker()); // false: this is the main thread
 * ```
 */
export function inPoolWorker(): boolean {
  return workerStart() !== null;
}

/**
 * Runs the servers `start` makes in this worker of a pool: reports where
 * they listen, answers the pool's requests for counters, drains them when
 * the pool shuts down, and closes the worker once they have stopped. An
 * error `start` throws (or rejects with), such as the port being taken, is
 * reported to the pool, whose `startWorkers` rejects with it; `start` should
 * then have closed the servers it did start.
 *
 * Each server should listen with `reusePort: true` on the same port in
 * every worker (the kernel then spreads the connections over them), and
 * run on the epoll backend: a worker that dies has the descriptors of its
 * epoll instance closed by the pool, which Deno's own sockets need not.
 *
 * @example See the module documentation.
 * ```ts ignore
 * import { serveEcho } from "@x/echo";
 * import { serveInWorker } from "@x/echo/workers";
 *
 * serveInWorker<{ port: number }>(({ data }) => [serveEcho({ port: data.port, reusePort: true })]);
 * ```
 *
 * @throws {Error} when this is not a worker that `startWorkers` started.
 */
export function serveInWorker<T>(
  start: (context: WorkerContext<T>) => WorkerServer[] | Promise<WorkerServer[]>,
): void {
  const context = workerStart();
  if (context === null) {
    throw new Error(
      "Cannot serve in a worker here: this is not a worker that startWorkers started; " +
        "start this module with startWorkers(new URL(...), { count })",
    );
  }
  const scope = globalThis as unknown as {
    postMessage(message: FromWorker): void;
    close(): void;
    onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  };
  // The pool learns of this worker's poller as soon as there is one: should the worker die,
  // the pool closes the descriptors in its epoll set, and keeps the memory its waits write to.
  observePoller((poller) =>
    scope.postMessage({
      kind: "poller",
      epollFd: poller?.fd ?? -1,
      tag: poller?.tag ?? 0,
      eventMemory: poller?.eventMemory ?? null,
      thread: isolateThread(),
    })
  );
  // The pool's data comes as the first message (posted, so structured-cloned).
  scope.onmessage = ({ data: message }) => {
    if (message.kind !== "start") return;
    scope.onmessage = null;
    run(message.data as T);
  };
  const run = async (data: T) => {
    let servers: WorkerServer[];
    try {
      servers = await start({ index: context.index, data });
    } catch (error) {
      const { name, message } = error instanceof Error ? error : new Error(String(error));
      await closeIdlePoller(); // start closed what it opened before throwing (see above)
      scope.postMessage({ kind: "failed", name, message });
      scope.close();
      return;
    }
    scope.onmessage = ({ data: message }) => {
      if (message.kind === "counters") {
        scope.postMessage({ kind: "counters", id: message.id, servers: countersOf(servers) });
      } else if (message.kind === "shutdown") {
        for (const server of servers) server.shutdown();
      }
    };
    scope.postMessage({
      kind: "listening",
      listeners: servers.map(({ addr, label }) => ({
        transport: addr.transport,
        addr,
        ...(label === undefined ? {} : { label }),
      })),
    });
    await Promise.all(servers.map((server) => server.finished));
    const counters = countersOf(servers);
    await closeIdlePoller(); // its descriptors are the process's, and would outlive this worker
    scope.postMessage({ kind: "finished", servers: counters });
    scope.onmessage = null;
    scope.close();
  };
}

function countersOf(servers: WorkerServer[]): WorkerServerCounters[] {
  return servers.map(({ addr, counters }) => ({
    transport: addr.transport,
    addr,
    counters: { ...counters } as Record<string, unknown>,
  }));
}

/** This worker's start-up data, or `null` on the main thread or in another worker. */
function workerStart(): WorkerStart | null {
  const name = (globalThis as { name?: unknown }).name;
  if (typeof name !== "string" || !name.startsWith(NAME_PREFIX)) return null;
  return JSON.parse(name.slice(NAME_PREFIX.length)) as WorkerStart;
}
