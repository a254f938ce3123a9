/**
 * What a worker pool and its workers say to each other, over `postMessage`.
 * The worker's start-up data travels in the Worker's `name` (see
 * `worker.ts`), so a worker module has it before its first line runs.
 *
 * @module
 */

import type { IsolateThread } from "../poll/_reclaim.ts";

/**
 * A socket a worker serves on.
 *
 * @example
 * ```ts
 * import type { WorkerListener } from "@x/echo/workers";
 *
 * const where = ({ transport, addr }: WorkerListener) => `${transport} port ${addr.port}`;
 * ```
 */
export interface WorkerListener {
  /** `"tcp"` or `"udp"`. */
  transport: "tcp" | "udp";
  /** Where it is bound, with the real port when 0 was asked for. */
  addr: Deno.NetAddr;
  /** What the server's `label` says of it, if it has one. */
  label?: string;
}

/**
 * One server of a worker and its counters, as its `counters` getter gave them.
 *
 * @example
 * ```ts
 * import type { WorkerServerCounters } from "@x/echo/workers";
 *
 * const line = ({ transport, addr, counters }: WorkerServerCounters) =>
 *   `${transport} ${addr.port}: ${JSON.stringify(counters)}`;
 * ```
 */
export interface WorkerServerCounters {
  /** The server's transport. */
  transport: "tcp" | "udp";
  /** Where the server listens. */
  addr: Deno.NetAddr;
  /** The server's counters (`TcpServerCounters` or `UdpServerCounters` for this module's servers). */
  counters: Record<string, unknown>;
}

/** What the Worker's `name` carries: it is there before the worker's code runs. */
export interface WorkerStart {
  /** The worker's place in the pool, from 0. */
  index: number;
}

/** Pool to worker. */
export type ToWorker =
  /**
   * The pool's data for this worker, its first message: posted, so it is
   * structured-cloned (a `SharedArrayBuffer` in it is shared, not copied).
   */
  | { kind: "start"; data: unknown }
  | { kind: "counters"; id: number }
  | { kind: "shutdown" };

/** Worker to pool. */
export type FromWorker =
  /**
   * The worker's poller was made (its epoll descriptor and tag, and the
   * memory its waits write into, which the pool keeps alive), or is gone
   * (`-1`, `0`, `null`); and the worker's thread, which must have ended
   * before the pool closes what the poller held.
   */
  | {
    kind: "poller";
    epollFd: number;
    tag: number;
    eventMemory: SharedArrayBuffer | null;
    thread: IsolateThread | null;
  }
  | { kind: "listening"; listeners: WorkerListener[] }
  | { kind: "failed"; name: string; message: string }
  | { kind: "counters"; id: number; servers: WorkerServerCounters[] }
  | { kind: "finished"; servers: WorkerServerCounters[] };

/** The prefix of a Worker name that carries a {@linkcode WorkerStart}. */
export const NAME_PREFIX = "@x/echo worker ";
