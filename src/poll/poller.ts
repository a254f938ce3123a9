/**
 * One epoll instance for the whole process, driven from JavaScript through
 * FFI. The wait runs on one of Deno's blocking threads (a `nonblocking` FFI
 * call) so the event loop stays free; the reads and writes of ready sockets
 * are plain synchronous calls on the main thread. Before each wait the
 * poller asks epoll once without blocking, which under load usually finds
 * work and saves the trip through the other thread.
 *
 * Connections read into one shared buffer: a read is handed to its
 * protocol and returns before the next read, so no connection needs a
 * buffer of its own while it waits. 10,000 idle connections cost no read
 * buffers at all. (A protocol that lends its own buffer, as the stream API
 * does, is read into that instead.) Between slices of events the poller
 * gives promise callbacks a turn, so handlers answer what was delivered.
 *
 * The wait loop runs only while something is registered: when the last
 * descriptor is removed, an `eventfd` wakes the blocked wait and the loop
 * ends, so a process (or a test) with nothing open has nothing pending.
 *
 * @module
 */

import {
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  EPOLL_DATA_OFFSET,
  EPOLL_EVENT_SIZE,
  EPOLLIN,
  type IoLibc,
  loadIoLibc,
  O_CLOEXEC,
  O_NONBLOCK,
} from "./syscalls.ts";
import { pollLogger } from "./_log.ts";

/** Something registered with the poller: told which events its descriptor has. */
export interface PollTarget {
  /** Called with the `EPOLL*` bits ready on the descriptor. */
  onEvents(events: number): void;
}

/** Events taken per wait. */
const MAX_EVENTS = 256;
/**
 * The most events handled before the callbacks they resolved get to run,
 * and the most bytes delivered ({@linkcode Poller.delivered}). Stream
 * handlers continue in promise callbacks: run them often enough and each
 * answers its read, handing its buffer back, before many more are filled,
 * and the data is still in the CPU's cache when it is sent back.
 */
const TURN_EVENTS = 16;
/** See {@linkcode TURN_EVENTS}. */
const TURN_BYTES = 256 * 1024;
/** The shared read buffer's smallest size, and what one read takes unless told otherwise. */
export const MIN_SHARED_BUFFER = 256 * 1024;

/** See the module documentation. */
export class Poller {
  /** The libc calls, for targets to read and write with. */
  readonly libc: IoLibc;
  /** Bytes targets handed on since callbacks last ran; targets add what they read. */
  delivered = 0;
  /** The buffer every read goes into; grown by {@linkcode Poller.reserveReadBuffer}. */
  readBuffer: Uint8Array = new Uint8Array(MIN_SHARED_BUFFER);
  readonly #epfd: number;
  readonly #wakeFd: number;
  readonly #targets: (PollTarget | undefined)[] = [];
  /** The events each descriptor is in the epoll set for; 0 when it is out of it. */
  readonly #masks: number[] = [];
  #count = 0;
  #running: Promise<void> | null = null;
  /** `true` while a wait is blocked on the other thread. */
  #blocked = false;
  readonly #events = new Uint8Array(MAX_EVENTS * EPOLL_EVENT_SIZE);
  readonly #words = new Uint32Array(this.#events.buffer);
  readonly #controlEvent = new Uint8Array(EPOLL_EVENT_SIZE);
  readonly #controlWords = new Uint32Array(this.#controlEvent.buffer);
  readonly #counter = new BigUint64Array(1);

  /** Creates the epoll instance and its wake-up `eventfd`. */
  constructor(libc: IoLibc) {
    this.libc = libc;
    const { epoll_create1, eventfd, close } = libc.symbols;
    this.#epfd = epoll_create1(O_CLOEXEC);
    if (this.#epfd < 0) throw libc.error(libc.errno(), "epoll_create1");
    this.#wakeFd = eventfd(0, O_NONBLOCK | O_CLOEXEC);
    if (this.#wakeFd < 0) {
      const error = libc.error(libc.errno(), "eventfd");
      close(this.#epfd);
      throw error;
    }
    this.#control(EPOLL_CTL_ADD, this.#wakeFd, EPOLLIN);
    this.#masks[this.#wakeFd] = EPOLLIN;
  }

  #view: Uint8Array = this.readBuffer.subarray(0, 0);

  /** Makes the shared read buffer at least `size` bytes. */
  reserveReadBuffer(size: number): void {
    if (size <= this.readBuffer.length) return;
    this.readBuffer = new Uint8Array(size);
    this.#view = this.readBuffer.subarray(0, 0);
  }

  /**
   * The first `length` bytes of the read buffer. Reads of one size tend to
   * follow each other (a protocol's messages), so the last view is reused
   * when the length matches: no allocation, and no garbage, on those reads.
   */
  readView(length: number): Uint8Array {
    if (this.#view.length !== length) this.#view = this.readBuffer.subarray(0, length);
    return this.#view;
  }

  /**
   * Registers `fd`, watched for `events` (level-triggered; 0 for none yet),
   * and calls `target` when they come. Starts the wait loop if it is not
   * running, on a later turn.
   *
   * @throws {Error} when epoll refuses the descriptor.
   */
  add(fd: number, target: PollTarget, events: number): void {
    if (this.#targets[fd] !== undefined) {
      throw new Error(`Descriptor ${fd} is already registered with the poller.`);
    }
    this.#targets[fd] = target;
    this.#masks[fd] = 0;
    this.#count++;
    try {
      this.modify(fd, events);
    } catch (error) {
      this.#targets[fd] = undefined;
      this.#count--;
      throw error;
    }
    // Not inside the caller: the loop may dispatch events at once.
    this.#running ??= Promise.resolve().then(() => this.#run());
  }

  /**
   * Changes the events `fd` is watched for. With 0 the descriptor leaves the
   * epoll set (a closed or failed socket would otherwise be reported ready
   * over and over) and comes back with the next non-zero mask.
   */
  modify(fd: number, events: number): void {
    const old = this.#masks[fd];
    if (old === events) return;
    const op = events === 0 ? EPOLL_CTL_DEL : old === 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    this.#control(op, fd, events);
    this.#masks[fd] = events;
  }

  /**
   * Stops watching `fd`; call it before closing `fd`. When it was the last
   * one, wakes the wait so the loop ends.
   */
  remove(fd: number): void {
    if (this.#targets[fd] === undefined) return;
    const { libc } = this;
    if (this.#masks[fd] !== 0) {
      if (libc.symbols.epoll_ctl(this.#epfd, EPOLL_CTL_DEL, fd, this.#controlEvent) < 0) {
        pollLogger.debug("epoll_ctl(DEL, {fd}) failed: {error}", {
          fd,
          error: libc.error(libc.errno(), "epoll_ctl"),
        });
      }
    }
    this.#targets[fd] = undefined;
    this.#masks[fd] = 0;
    this.#count--;
    if (this.#count === 0 && this.#blocked) {
      this.#counter[0] = 1n;
      libc.symbols.write(this.#wakeFd, this.#counter, 8n);
    }
  }

  /**
   * Resolves once the wait loop has ended, when nothing is registered; at
   * once while something still is (its owner will wait for it instead).
   */
  whenIdle(): Promise<void> {
    return this.#count > 0 || this.#running === null ? Promise.resolve() : this.#running;
  }

  #control(op: number, fd: number, events: number): void {
    const words = this.#controlWords;
    words[0] = events;
    words[EPOLL_DATA_OFFSET / 4] = fd;
    const { libc } = this;
    if (libc.symbols.epoll_ctl(this.#epfd, op, fd, this.#controlEvent) < 0) {
      throw libc.error(libc.errno(), `epoll_ctl on descriptor ${fd}`);
    }
  }

  async #run(): Promise<void> {
    const { epoll_wait, epoll_wait_blocking } = this.libc.symbols;
    const epfd = this.#epfd;
    const events = this.#events;
    try {
      while (this.#count > 0) {
        let n = epoll_wait(epfd, events, MAX_EVENTS, 0);
        if (n === 0) {
          this.#blocked = true;
          n = await epoll_wait_blocking(epfd, events, MAX_EVENTS, -1);
          this.#blocked = false;
        }
        // n < 0 is EINTR (a signal reached the waiting thread): wait again.
        for (let from = 0; from < n;) {
          from = this.#dispatch(from, Math.min(n, from + TURN_EVENTS));
          this.delivered = 0;
          await null;
        }
      }
    } finally {
      this.#running = null;
    }
  }

  /**
   * Calls the targets of events `from` to `to`, or fewer once
   * {@linkcode TURN_BYTES} were delivered; returns where it stopped. A
   * function of its own, so V8 optimises it whole.
   */
  #dispatch(from: number, to: number): number {
    const words = this.#words;
    const targets = this.#targets;
    const wakeFd = this.#wakeFd;
    const stride = EPOLL_EVENT_SIZE / 4;
    const dataAt = EPOLL_DATA_OFFSET / 4;
    for (let i = from, at = from * stride; i < to; i++, at += stride) {
      const fd = words[at + dataAt];
      if (fd === wakeFd) {
        this.libc.symbols.read(wakeFd, this.#counter, 8n);
        continue;
      }
      // A descriptor removed earlier in this batch has no target: skip its event.
      const target = targets[fd];
      if (target === undefined) continue;
      try {
        target.onEvents(words[at]);
      } catch (error) {
        // Targets handle their own errors; this is a bug, so say so and go on.
        pollLogger.error("Handling events of descriptor {fd} threw: {error}", { fd, error });
      }
      if (this.delivered >= TURN_BYTES) return i + 1;
    }
    return to;
  }
}

let shared: Poller | string | undefined;

/**
 * The process's poller, made on first use; or a sentence saying why there
 * is none here (not Linux, no `--allow-ffi`, epoll refused).
 */
export function getPoller(): Poller | string {
  if (shared !== undefined) return shared;
  const libc = loadIoLibc();
  if (typeof libc === "string") return shared = libc;
  try {
    return shared = new Poller(libc);
  } catch (error) {
    return shared = `cannot create an epoll instance: ${(error as Error).message}`;
  }
}
