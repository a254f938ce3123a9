/**
 * Servers on every core: a pool of Web Workers, each running the same
 * module with its own event loop, poller and `reusePort` sockets, the
 * kernel spreading connections (and datagrams, by source) over them, as
 * `deno serve --parallel` does. The pool starts them, restarts one that
 * dies, gathers their counters, and drains them all on shutdown.
 *
 * Workers rather than processes: they share one process, so they inherit
 * its permissions and flags (a child process would need them spelled out
 * again, and `deno run` gives a program no way to read its own), one
 * signal handler and one stderr serve them all, and counters travel as
 * messages. The cost is isolation: a worker that dies leaves its
 * descriptors to the pool, which closes them once the worker's thread has
 * ended (see `poll/_reclaim.ts`).
 *
 * @example main.ts: four workers, each running worker.ts (see `serveInWorker`)
 * ```ts ignore
 * import { startWorkers } from "@x/echo/workers";
 *
 * const pool = await startWorkers(new URL("./worker.ts", import.meta.url), {
 *   count: 4,
 *   data: { port: 8888 },
 * });
 * console.log(`listening on ${pool.listeners.map((l) => l.addr.port)} in ${pool.size} workers`);
 * Deno.addSignalListener("SIGINT", () => pool.shutdown());
 * await pool.finished;
 * ```
 *
 * @module
 */

import { loadLibc } from "../libc/_libc.ts";
import type { EpollLibc } from "../poll/_poller.ts";
import { type IsolateThread, reclaimPollerDescriptors, whenThreadEnds } from "../poll/_reclaim.ts";
import { checkInteger } from "../_validate.ts";
import { workersLogger } from "./_log.ts";
import {
  type FromWorker,
  NAME_PREFIX,
  type ToWorker,
  type WorkerListener,
  type WorkerServerCounters,
  type WorkerStart,
} from "./_messages.ts";

export type { WorkerListener } from "./_messages.ts";

/**
 * How {@linkcode startWorkers} runs its workers.
 *
 * @example
 * ```ts
 * import type { WorkerPoolOptions } from "@x/echo/workers";
 *
 * const options: WorkerPoolOptions<{ port: number }> = {
 *   count: "auto",
 *   // Port 0: worker 0 picks a free port, the others join it there.
 *   data: (index, first) => ({ port: first?.[0].addr.port ?? 0 }),
 * };
 * ```
 */
export interface WorkerPoolOptions<T> {
  /**
   * How many workers: 1 to 1024, or `"auto"`, one per CPU
   * (`navigator.hardwareConcurrency`).
   */
  count: number | "auto";
  /**
   * What each worker's start function gets as `data`: one value for all
   * (it is posted, so structured-cloned: a `SharedArrayBuffer` in it is
   * shared by the workers), or a function of the worker's
   * index and the listeners of worker 0. Worker 0 starts first, alone, and
   * gets `null`; the others start once it listens, so a port 0 can become
   * the port worker 0 was given.
   */
  data?: T | ((index: number, first: readonly WorkerListener[] | null) => T);
  /**
   * Milliseconds a worker that died waits before it is started again; it
   * doubles (up to 30 s) while workers keep dying within 10 s of starting.
   * Default 100.
   */
  restartDelay?: number;
}

/**
 * One worker's servers and their counters.
 *
 * @example
 * ```ts
 * import type { WorkerCounters } from "@x/echo/workers";
 *
 * const accepted = (worker: WorkerCounters) =>
 *   worker.servers.reduce((sum, s) => sum + Number(s.counters.accepted ?? 0), 0);
 * ```
 */
export interface WorkerCounters {
  /** The worker's index. */
  index: number;
  /** Times this worker died and was started again. */
  restarts: number;
  /** Its servers' counters, in the order its start function returned them; empty if it is down. */
  servers: WorkerServerCounters[];
}

/**
 * A running pool of workers; see {@linkcode startWorkers}.
 *
 * @example
 * ```ts ignore
 * import { startWorkers, type WorkerPool } from "@x/echo/workers";
 *
 * const pool: WorkerPool = await startWorkers(new URL("./worker.ts", import.meta.url), {
 *   count: 2,
 * });
 * console.log(await pool.counters());
 * await pool.shutdown();
 * ```
 */
export interface WorkerPool extends AsyncDisposable {
  /** How many workers the pool runs. */
  readonly size: number;
  /** Where worker 0's servers listen (every worker listens alike). */
  readonly listeners: readonly WorkerListener[];
  /** Workers that died and were started again, so far. */
  readonly restarts: number;
  /** Each worker's counters now; a worker that is down or stopped has none. */
  counters(): Promise<WorkerCounters[]>;
  /**
   * Drains every worker's servers; resolves with each worker's last
   * counters once all have stopped. A second call stops them at once.
   */
  shutdown(): Promise<WorkerCounters[]>;
  /** Resolves as `shutdown()` does, however the pool was stopped. */
  readonly finished: Promise<WorkerCounters[]>;
}

/** The longest wait before a worker that keeps dying is started again. */
const MAX_RESTART_DELAY = 30_000;
/** A worker that dies sooner than this after starting doubles the next delay. */
const QUICK_DEATH = 10_000;
/**
 * How long a worker that was ended may take to stop running before its
 * descriptors are given up on (left open, not closed under it).
 */
const ENDING_MS = 5_000;
/** The most workers a pool runs. */
const MAX_WORKERS = 1024;

/**
 * Starts `count` Web Workers running `module`, which calls `serveInWorker`;
 * resolves once every worker listens. Worker 0 starts first, then the
 * others together. See the module documentation.
 *
 * @example See the module documentation.
 * ```ts ignore
 * import { startWorkers } from "@x/echo/workers";
 *
 * const pool = await startWorkers(new URL("./worker.ts", import.meta.url), { count: "auto" });
 * await pool.shutdown();
 * ```
 *
 * @throws {RangeError} for a bad `count` or `restartDelay`.
 * @throws {Error} what a worker's start function threw (the same class where it is a built-in
 * or `Deno.errors` one), such as `Deno.errors.AddrInUse`; the workers started are stopped.
 */
export function startWorkers<T>(
  module: string | URL,
  options: WorkerPoolOptions<T>,
): Promise<WorkerPool> {
  return startPool(module, options, ENDING_MS);
}

/**
 * {@linkcode startWorkers}, with `endingMs` the time an ended worker's
 * thread may run on before its descriptors are given up on (left open):
 * 5 s there. The tests shorten it; `mod.ts` does not export this.
 */
export async function startPool<T>(
  module: string | URL,
  options: WorkerPoolOptions<T>,
  endingMs: number,
): Promise<WorkerPool> {
  const count = options.count === "auto" ? navigator.hardwareConcurrency : options.count;
  if (options.count !== "auto") {
    if (typeof count !== "number" || !Number.isInteger(count) || count < 1) {
      throw new RangeError(
        `Cannot use count ${JSON.stringify(options.count)}: ` +
          `it must be a whole number from 1 to ${MAX_WORKERS}, or "auto"`,
      );
    }
    checkInteger("count", count, 1, MAX_WORKERS);
  }
  const restartDelay = options.restartDelay ?? 100;
  checkInteger("restartDelay", restartDelay, 0, MAX_RESTART_DELAY);
  const pool = new Pool(String(module), count, options.data, restartDelay, endingMs);
  await pool.start();
  return pool;
}

/** One worker slot of the pool: the Worker in it now and what it said. */
interface Slot {
  index: number;
  worker: Worker | null;
  /** The worker listens (it said so), so it is restarted if it dies. */
  listening: boolean;
  /** The epoll descriptor of the worker's poller, or -1 while it has none. */
  epollFd: number;
  /** Its poller's `tag` (see `poll/_reclaim.ts`). */
  tag: number;
  /** The worker's thread, once its poller was made. */
  thread: IsolateThread | null;
  /**
   * The memory its pollers' waits write into, kept for as long as the pool
   * runs: a wait blocked on another thread when the worker died writes
   * there when it returns.
   */
  eventMemory: SharedArrayBuffer[];
  startedAt: number;
  restarts: number;
  /** The last counters of a worker that finished. */
  final: WorkerServerCounters[] | null;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Settles the start of this worker: listening, or failed. */
  onStart: ((error: Error | null) => void) | null;
}

class Pool implements WorkerPool {
  readonly size: number;
  listeners: readonly WorkerListener[] = [];
  readonly #module: string;
  readonly #data: unknown;
  readonly #baseDelay: number;
  /** How long an ended worker may run on before its descriptors are given up on. */
  readonly #endingMs: number;
  readonly #slots: Slot[] = [];
  readonly #finished = Promise.withResolvers<WorkerCounters[]>();
  readonly #requests = new Map<number, { waiting: Set<number>; done: () => void }>();
  readonly #replies = new Map<number, Map<number, WorkerServerCounters[]>>();
  #first: readonly WorkerListener[] | null = null;
  #nextRequest = 0;
  #restartDelay: number;
  #stopping = false;
  #restarts = 0;
  /** Ended workers whose descriptors are still to be closed. */
  #reclaiming = 0;

  constructor(
    module: string,
    size: number,
    data: unknown,
    restartDelay: number,
    endingMs: number,
  ) {
    this.#module = module;
    this.#endingMs = endingMs;
    this.size = size;
    this.#data = data;
    this.#baseDelay = this.#restartDelay = restartDelay;
    for (let index = 0; index < size; index++) {
      this.#slots.push({
        index,
        worker: null,
        listening: false,
        epollFd: -1,
        tag: 0,
        thread: null,
        eventMemory: [],
        startedAt: 0,
        restarts: 0,
        final: null,
        timer: undefined,
        onStart: null,
      });
    }
  }

  get restarts(): number {
    return this.#restarts;
  }

  get finished(): Promise<WorkerCounters[]> {
    return this.#finished.promise;
  }

  async start(): Promise<void> {
    const [first, ...others] = this.#slots;
    await this.#launch(first); // a worker that fails to start has its descriptors closed
    this.listeners = this.#first!;
    const started = await Promise.allSettled(others.map((slot) => this.#launch(slot)));
    const failed = started.find((result) => result.status === "rejected");
    if (failed === undefined) return;
    // Those that listen drain and close what they opened, as on shutdown.
    await this.shutdown();
    throw failed.reason;
  }

  counters(): Promise<WorkerCounters[]> {
    const id = this.#nextRequest++;
    const replies = new Map<number, WorkerServerCounters[]>();
    const waiting = new Set<number>();
    const { promise, resolve } = Promise.withResolvers<void>();
    for (const slot of this.#slots) {
      if (slot.worker === null || !slot.listening) continue;
      waiting.add(slot.index);
      this.#post(slot, { kind: "counters", id });
    }
    this.#replies.set(id, replies);
    this.#requests.set(id, { waiting, done: resolve });
    if (waiting.size === 0) resolve();
    return promise.then(() => {
      this.#requests.delete(id);
      this.#replies.delete(id);
      return this.#slots.map((slot) => ({
        index: slot.index,
        restarts: slot.restarts,
        servers: replies.get(slot.index) ?? slot.final ?? [],
      }));
    });
  }

  shutdown(): Promise<WorkerCounters[]> {
    this.#stopping = true;
    for (const slot of this.#slots) {
      clearTimeout(slot.timer);
      slot.timer = undefined;
      if (slot.worker !== null) this.#post(slot, { kind: "shutdown" });
    }
    this.#maybeFinish();
    return this.finished;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown().then(() => {});
  }

  /** Starts a worker in `slot`; resolves once it listens, rejects if it fails first. */
  #launch(slot: Slot): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const start: WorkerStart = { index: slot.index };
    const data = typeof this.#data === "function"
      ? this.#data(slot.index, this.#first)
      : this.#data;
    const worker = new Worker(this.#module, {
      type: "module",
      name: NAME_PREFIX + JSON.stringify(start),
    });
    worker.postMessage({ kind: "start", data } satisfies ToWorker);
    slot.worker = worker;
    slot.listening = false;
    slot.epollFd = -1;
    slot.final = null;
    slot.startedAt = performance.now();
    slot.onStart = (error) => {
      slot.onStart = null;
      if (error === null) resolve();
      else reject(error);
    };
    worker.onmessage = ({ data }: MessageEvent<FromWorker>) => this.#onMessage(slot, data);
    worker.onerror = (event) => {
      event.preventDefault(); // the worker is gone; this process goes on
      this.#died(slot, event.error ?? new Error(event.message));
    };
    worker.onmessageerror = () => {
      workersLogger.error("Cannot read a message from worker {index}: it was ignored", {
        index: slot.index,
      });
    };
    return promise;
  }

  #onMessage(slot: Slot, message: FromWorker): void {
    switch (message.kind) {
      case "poller":
        slot.epollFd = message.epollFd;
        slot.tag = message.tag;
        slot.thread = message.thread;
        if (message.eventMemory !== null) slot.eventMemory.push(message.eventMemory);
        break;
      case "listening":
        slot.listening = true;
        this.#first ??= message.listeners;
        slot.onStart?.(null);
        if (this.#stopping) this.#post(slot, { kind: "shutdown" });
        break;
      case "failed":
        this.#died(slot, rebuildError(message.name, message.message));
        break;
      case "counters":
        this.#replies.get(message.id)?.set(slot.index, message.servers);
        this.#answered(slot.index, message.id);
        break;
      case "finished": {
        slot.final = message.servers;
        if (!this.#stopping) {
          // Its servers stopped without being asked to (their listeners failed): start it again.
          return this.#died(slot, new Error("Its servers stopped on their own"));
        }
        // A poller it could not close (something was still registered) is closed here.
        this.#endAndReclaim(slot);
        this.#maybeFinish();
        break;
      }
    }
  }

  /** The worker in `slot` ended without being asked to: log it, reclaim, restart. */
  #died(slot: Slot, error: Error): void {
    if (slot.worker === null) return;
    const wasListening = slot.listening;
    const reclaimed = this.#endAndReclaim(slot);
    // A start that failed fails once what the worker opened is closed.
    const onStart = slot.onStart;
    if (onStart !== null) {
      slot.onStart = null;
      reclaimed.then(() => onStart(error));
      return;
    }
    if (this.#stopping || !wasListening) return this.#maybeFinish();
    this.#scheduleRestart(
      slot,
      (ms) =>
        workersLogger.error("Worker {index} died: {error}; starting it again in {ms} ms", {
          index: slot.index,
          error,
          ms,
        }),
    );
  }

  /**
   * Starts the worker of `slot` again after a delay that doubles while
   * workers keep dying soon after starting; `log` says how long it is.
   */
  #scheduleRestart(slot: Slot, log: (ms: number) => void): void {
    const quick = performance.now() - slot.startedAt < QUICK_DEATH;
    this.#restartDelay = quick
      ? Math.min(Math.max(this.#restartDelay * 2, this.#baseDelay), MAX_RESTART_DELAY)
      : this.#baseDelay;
    const ms = this.#restartDelay;
    log(ms);
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      if (this.#stopping) return this.#maybeFinish();
      slot.restarts++;
      this.#restarts++;
      this.#launch(slot).then(
        () => workersLogger.info("Worker {index} is serving again", { index: slot.index }),
        (failure) => {
          if (this.#stopping) return this.#maybeFinish();
          this.#scheduleRestart(slot, (next) =>
            workersLogger.error(
              "Worker {index} failed to start again: {error}; trying again in {ms} ms",
              { index: slot.index, error: failure, ms: next },
            ));
        },
      );
    }, ms);
  }

  /**
   * Ends the worker in `slot` and, should its poller still be open, closes
   * the descriptors the poller held, once the worker's thread has ended
   * (see `poll/_reclaim.ts`). The pool does not finish before that.
   */
  #endAndReclaim(slot: Slot): Promise<void> {
    const { epollFd, tag, thread, index } = slot;
    this.#terminate(slot);
    slot.epollFd = -1;
    if (epollFd < 0) return Promise.resolve();
    this.#reclaiming++;
    return this.#reclaim(index, epollFd, tag, thread).finally(() => {
      this.#reclaiming--;
      this.#maybeFinish();
    });
  }

  async #reclaim(
    index: number,
    epollFd: number,
    tag: number,
    thread: IsolateThread | null,
  ): Promise<void> {
    try {
      if (thread !== null && !await whenThreadEnds(thread, this.#endingMs)) {
        workersLogger.warning(
          "Worker {index} still runs {seconds} s after it was ended (its JavaScript never " +
            "returns to its event loop): its descriptors stay open",
          { index, seconds: this.#endingMs / 1000 },
        );
        return;
      }
      const reclaimed = reclaimPollerDescriptors(loadLibc() as EpollLibc, epollFd, tag);
      if (reclaimed === null) {
        // It closed its poller, and died before its message saying so arrived.
        workersLogger.debug(
          "Closed no descriptor of worker {index}: descriptor {fd} no longer holds its poller",
          { index, fd: epollFd },
        );
        return;
      }
      workersLogger.debug("Closed {count} descriptors of worker {index}", {
        count: reclaimed.watched,
        index,
      });
    } catch (error) {
      workersLogger.warning(
        "Cannot close the descriptors of worker {index}: {error}; its sockets stay open",
        { index, error },
      );
    }
  }

  #terminate(slot: Slot): void {
    const worker = slot.worker;
    if (worker === null) return;
    slot.worker = null;
    slot.listening = false;
    worker.onmessage = null;
    worker.onerror = (event) => event.preventDefault();
    worker.terminate();
    // A request for counters waits no longer for this worker.
    for (const id of this.#requests.keys()) this.#answered(slot.index, id);
  }

  #answered(index: number, id: number): void {
    const request = this.#requests.get(id);
    if (request === undefined || !request.waiting.delete(index)) return;
    if (request.waiting.size === 0) request.done();
  }

  #post(slot: Slot, message: ToWorker): void {
    slot.worker?.postMessage(message);
  }

  #maybeFinish(): void {
    if (!this.#stopping) return;
    if (this.#reclaiming > 0) return;
    if (this.#slots.some((slot) => slot.worker !== null || slot.timer !== undefined)) return;
    this.#finished.resolve(
      this.#slots.map((slot) => ({
        index: slot.index,
        restarts: slot.restarts,
        servers: slot.final ?? [],
      })),
    );
  }
}

/** An error of the class a worker reported by name, where that is a built-in one. */
function rebuildError(name: string, message: string): Error {
  const denoErrors = Deno.errors as unknown as Record<string, new (message: string) => Error>;
  if (name in denoErrors) return new denoErrors[name](message);
  if (name === "RangeError") return new RangeError(message);
  if (name === "TypeError") return new TypeError(message);
  const error = new Error(message);
  error.name = name;
  return error;
}
