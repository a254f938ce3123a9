/**
 * One epoll instance for the whole process (or Web Worker), driven from
 * JavaScript through FFI. The wait runs on one of Deno's blocking threads
 * (a `nonblocking` FFI call) so the event loop stays free; the reads and
 * writes of ready sockets are plain synchronous calls on the main thread.
 * Before each wait the poller asks epoll once without blocking, which under
 * load usually finds work and saves the trip through the other thread.
 * A program whose I/O all goes through the poller (the server program) may
 * ask it, with {@linkcode waitOnMainThread}, to sleep in `epoll_wait` on
 * the main thread when the look without blocking had found events (the
 * program is busy), so the next event wakes it directly: a third less CPU
 * per datagram at 4 UDP sockets. It may also ask it to keep looking
 * without sleeping for a few tens of microseconds first (the bench does),
 * as a peer's answer is often that close. Not by default: while it sleeps,
 * Deno's own sockets in the same program wait too (see BENCHMARKS.md).
 * Every 10 ms of waits that never went to the other thread, one does, so
 * Deno's event loop turns (timers, signals, its own sockets) under any
 * load.
 *
 * Connections read into one shared buffer: a read is handed to its
 * protocol and returns before the next read, so no connection needs a
 * buffer of its own while it waits. 10,000 idle connections cost no read
 * buffers at all. (A protocol that lends its own buffer, as the stream API
 * does, is read into that instead.) Between slices of events the poller
 * gives promise callbacks a turn, so handlers answer what was delivered.
 *
 * What it guarantees its targets:
 * - An event is delivered only to the registration it was reported for:
 *   each `add` of a descriptor gets a new generation, kept with the
 *   descriptor in epoll's 64-bit `data`, and an event whose generation is
 *   not the descriptor's current one is dropped. So a descriptor removed
 *   after a wait returned gets none of its events, even when a new socket
 *   took its number meanwhile (libuv's `uv__platform_invalidate_fd` drops
 *   them for the same reason).
 * - A failed wait is never retried blindly: EINTR waits again; any other
 *   error is logged and handed to every target (`onPollerError`), the
 *   poller closes, and the next user gets a new one.
 *
 * It keeps timers of its own too ({@linkcode Poller.schedule}): run after
 * each batch of events, and bounding every wait, they fire on time however
 * busy the loop is, which Deno's timers do not (see {@linkcode TURN_MS}).
 *
 * The wait loop runs only while something is registered or a timer of its
 * own is scheduled: when the last descriptor is removed (and no timer
 * waits), an `eventfd` wakes the blocked wait and the loop ends, so a
 * process (or a test) with nothing open has nothing pending.
 *
 * @module
 */

import { type PollTimer, TimerHeap } from "./_timers.ts";
import {
  EINTR,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  EPOLL_DATA_OFFSET,
  EPOLL_EVENT_SIZE,
  EPOLLIN,
  O_CLOEXEC,
  O_NONBLOCK,
} from "../libc/_constants.ts";
import {
  type ErrnoReader,
  isLibc,
  type LinuxSymbols,
  loadLibc,
  type PortableSymbols,
} from "../libc/_libc.ts";
import { pollLogger } from "./_log.ts";
import { monotonicMs } from "../libc/_clock.ts";

/**
 * The calls the poller and the sockets it drives make: the real libc on
 * Linux, or a fake in tests.
 */
export interface EpollLibc extends ErrnoReader {
  /** `recv`, `send`, `shutdown`, `close`, `dup`. */
  readonly symbols: Pick<PortableSymbols, "recv" | "send" | "shutdown" | "close" | "dup">;
  /** epoll, `eventfd`, `accept4`, `read`, `write`. */
  readonly linux: Pick<
    LinuxSymbols,
    | "epoll_create1"
    | "epoll_ctl"
    | "epoll_wait"
    | "epoll_wait_blocking"
    | "epoll_pwait2_blocking"
    | "epoll_pwait2"
    | "eventfd"
    | "accept4"
    | "read"
    | "write"
  >;
}

/** Something registered with the poller: told which events its descriptor has. */
export interface PollTarget {
  /** Called with the `EPOLL*` bits ready on the descriptor. */
  onEvents(events: number): void;
  /**
   * The poller failed for good (`epoll_wait` returned an error other than
   * EINTR): the descriptor will never be polled again. The target fails
   * and releases it.
   */
  onPollerError(error: Error): void;
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
export const TURN_BYTES = 256 * 1024;
/**
 * The longest the loop goes on without letting Deno's event loop turn. The
 * wait asks without blocking while events keep coming, and each batch ends
 * with a turn for promise callbacks only; timers, signal listeners and
 * Deno's own sockets need the event loop, which runs when a wait is made on
 * the blocking thread. Under a load that never lets the wait block (a UDP
 * flood, a socket always ready), one wait in this interval is made there.
 * That turn does not always run a timer that is due, though: such a wait
 * returns at once, and Deno then often goes back to this loop without
 * firing it. A 1 s timer in a loop of 9 ms of work and a nonblocking FFI
 * call that returns at once fired 13-1,142 ms late (a call that took
 * 200 µs let it fire on time); the bench's closed loop, with its waits on
 * the main thread, ended up to 540 ms past its duration. What must happen
 * by a time under such load is a timer of the poller's own
 * ({@linkcode Poller.schedule}; an `Alarm` is one where there is a poller).
 */
const TURN_MS = 10;
/** The longest timeout `epoll_wait` takes (an `int` of milliseconds). */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;
/** The longest a wait sleeps on the main thread (see `Poller.#waitHere`), in milliseconds. */
const WAIT_HERE_MS = 1;
/** Whether waits may sleep on the main thread: see {@linkcode waitOnMainThread}. */
let mainThreadWaits = false;
/** How long a wait on the main thread looks without sleeping first, in milliseconds. */
let spinMs = 0;
/** The most waits a spin that found nothing makes the next spins skip (see `Poller.#waitHere`). */
const MAX_SPIN_SKIPS = 64;

/**
 * Lets the poller of this isolate (each worker decides for its own) sleep
 * in `epoll_wait` on the isolate's thread for up to 1 ms when its last look
 * without blocking found events, instead of handing each wait to a
 * blocking thread. Only for a program whose I/O
 * all goes through the poller: Deno's own sockets, and the clients of this
 * module (which use them), wait while it sleeps. Deno's event loop still
 * gets a turn every 10 ms, but a due timer may be held back for longer (see
 * {@linkcode TURN_MS}).
 *
 * With `spinMicroseconds`, each such wait first looks without sleeping,
 * over and over, for up to that long (busy polling, as HAProxy's
 * `busy-polling` and Linux's `SO_BUSY_POLL` call it). A sleep and its
 * wake-up cost several microseconds of CPU on a virtual machine's cores,
 * and the sleeping core may be handed to another guest, which delays the
 * answer further: a program whose next event is due within that time (a
 * closed-loop client; a server under load) spends the time looking
 * instead. At 4 UDP sockets against `cecho_udp` the bench made a quarter
 * to a third more round trips a second, with 10–20% less CPU per round
 * trip; the UDP server answering `udpload` at 4 sockets, about a tenth
 * more, and no more CPU per datagram (BENCHMARKS.md). A spin that finds
 * nothing costs its whole length, so the next spins are skipped, for a
 * number of waits that doubles with each such spin (up to 64) and starts
 * again at none when one finds an event: a program whose peers are quiet
 * for longer than the spin soon stops spinning. Each spin holds a core:
 * see {@linkcode spinWhereCoresAllow}.
 */
export function waitOnMainThread(on: boolean, spinMicroseconds = 0): void {
  mainThreadWaits = on;
  spinMs = on ? spinMicroseconds / 1000 : 0;
}

/**
 * The spin to ask of {@linkcode waitOnMainThread} in a program of `loops`
 * event loops (itself and its workers): `microseconds` where the machine
 * (as far as this process may use it: `navigator.hardwareConcurrency`
 * follows CPU affinity) has at least twice as many cores as loops, else 0.
 * A spinning loop holds its core, and its peers, most often on the same
 * machine, need the others: pinned to one core with `cecho`, the bench's
 * spin cost it 20–25% of its requests a second.
 */
export function spinWhereCoresAllow(microseconds: number, loops: number): number {
  return navigator.hardwareConcurrency >= 2 * loops ? microseconds : 0;
}

/** What {@linkcode waitOnMainThread} set in this isolate: `null` when its waits do not sleep here. */
export function mainThreadWaitSettings(): { spinMicroseconds: number } | null {
  return mainThreadWaits ? { spinMicroseconds: spinMs * 1000 } : null;
}

/** The shared read buffer's smallest size, and what one read takes unless told otherwise. */
export const MIN_SHARED_BUFFER = 256 * 1024;

/** See the module documentation. */
export class Poller {
  /** The libc calls, for targets to read and write with. */
  readonly libc: EpollLibc;
  /** Bytes targets handed on since callbacks last ran; targets add what they read. */
  delivered = 0;
  /** The buffer every read goes into; grown by {@linkcode Poller.reserveReadBuffer}. */
  readBuffer: Uint8Array = new Uint8Array(MIN_SHARED_BUFFER);
  /**
   * The epoll instance's descriptor: what a worker pool reads to reclaim the
   * descriptors of a worker that died (see `_reclaim.ts`).
   */
  get fd(): number {
    return this.#epfd;
  }

  /**
   * A random number this instance's epoll set shows, as the upper half of
   * its wake `eventfd`'s registration: what tells `_reclaim.ts` that the
   * descriptor it was told of still holds this instance and not another
   * that was given the number since.
   */
  readonly tag: number = (0x80000000 | crypto.getRandomValues(new Uint32Array(1))[0]) >>> 0;

  /** The memory waits write their events into (see `#events`). */
  get eventMemory(): SharedArrayBuffer {
    return this.#events.buffer as SharedArrayBuffer;
  }
  readonly #epfd: number;
  readonly #wakeFd: number;
  readonly #targets: (PollTarget | undefined)[] = [];
  /** The events each descriptor is in the epoll set for; 0 when it is out of it. */
  readonly #masks: number[] = [];
  /** Each descriptor's current registration, told apart from earlier ones of the same number. */
  readonly #generations: number[] = [];
  #count = 0;
  #running: Promise<void> | null = null;
  /** Owners waiting for the loop to end (see `whenIdle`). */
  #idleWaiters: (() => void)[] = [];
  /** When Deno's event loop last had a turn (a wait on the blocking thread ended). */
  #lastTurn = monotonicMs();
  /** The last wait found events: the next may well come soon. */
  #busy = false;
  /** Waits to make on the blocking thread before sleeping on this one is tried again. */
  #hereSkips = 0;
  /** What {@linkcode Poller.#hereSkips} is set to when a wait here finds nothing; doubles each time. */
  #hereBackoff = 1;
  /** Waits here that skip the spin: set when a spin found nothing (see `#waitHere`). */
  #spinSkips = 0;
  /** What {@linkcode Poller.#spinSkips} is set to when a spin finds nothing; doubles each time. */
  #spinBackoff = 1;
  /** `true` while a wait is blocked on the other thread. */
  #blocked = false;
  /** When the wait blocked on the other thread returns by itself (`monotonicMs()`; `Infinity`: never). */
  #blockedUntil = Infinity;
  /** The timers of {@linkcode Poller.schedule}. */
  readonly #timers = new TimerHeap();
  /** Where the timers due are set apart before they fire (reused). */
  readonly #dueTimers: PollTimer[] = [];
  /** `epoll_pwait2` on the blocking thread, while it works here (see `#waitUntil`). */
  #pwait2: LinuxSymbols["epoll_pwait2_blocking"];
  /** `epoll_pwait2` on this thread, while it works (see `#waitHere`). */
  #pwait2Here: LinuxSymbols["epoll_pwait2"];
  /** The last wait here slept until a timer of the poller's was due (see `#waitHere`). */
  #timerEnded = false;
  /** The `struct timespec` of its timeout: seconds, nanoseconds. */
  readonly #timespec = new BigInt64Array(2);
  /** Set once a wait failed for good: the poller is closed. */
  #failure: Error | null = null;
  readonly #onFailure: ((poller: Poller) => void) | undefined;
  /**
   * Where waits put their events: shared memory, so that whoever holds
   * {@linkcode Poller.eventMemory} keeps it alive. A wait blocked on another
   * thread writes here when it returns, even after this poller's isolate is
   * gone (a worker that died): a worker pool keeps it for that.
   */
  readonly #events = new Uint8Array(new SharedArrayBuffer(MAX_EVENTS * EPOLL_EVENT_SIZE));
  readonly #words = new Uint32Array(this.#events.buffer);
  readonly #controlEvent = new Uint8Array(EPOLL_EVENT_SIZE);
  readonly #controlWords = new Uint32Array(this.#controlEvent.buffer);
  readonly #counter = new BigUint64Array(1);

  /**
   * Creates the epoll instance and its wake-up `eventfd`. `onFailure` runs
   * once if the poller fails for good.
   *
   * @throws {Error} when the kernel refuses either.
   */
  constructor(libc: EpollLibc, onFailure?: (poller: Poller) => void) {
    this.libc = libc;
    this.#pwait2 = libc.linux.epoll_pwait2_blocking ?? null;
    this.#pwait2Here = libc.linux.epoll_pwait2 ?? null;
    this.#onFailure = onFailure;
    const { epoll_create1, eventfd } = libc.linux;
    this.#epfd = epoll_create1(O_CLOEXEC);
    if (this.#epfd < 0) throw libc.error(libc.errno(), "create an epoll instance");
    this.#wakeFd = eventfd(0, O_NONBLOCK | O_CLOEXEC);
    if (this.#wakeFd < 0) {
      const error = libc.error(libc.errno(), "create an eventfd");
      libc.symbols.close(this.#epfd);
      throw error;
    }
    // Sockets' registrations carry their generations (small counts) there; the top bit set
    // keeps the tag apart from them.
    this.#generations[this.#wakeFd] = this.tag;
    try {
      this.#control(EPOLL_CTL_ADD, this.#wakeFd, EPOLLIN);
    } catch (error) {
      libc.symbols.close(this.#wakeFd);
      libc.symbols.close(this.#epfd);
      throw error;
    }
    this.#masks[this.#wakeFd] = EPOLLIN;
  }

  #view: Uint8Array = this.readBuffer.subarray(0, 0);

  /** How many descriptors are registered. */
  get size(): number {
    return this.#count;
  }

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
   * @throws {Error} when epoll refuses the descriptor, the descriptor is
   * registered already, or the poller has failed.
   */
  add(fd: number, target: PollTarget, events: number): void {
    if (this.#failure !== null) throw this.#failure;
    if (this.#targets[fd] !== undefined) {
      throw new Error(
        `Cannot register descriptor ${fd} with the poller: it is registered already`,
      );
    }
    this.#targets[fd] = target;
    this.#masks[fd] = 0;
    this.#generations[fd] = ((this.#generations[fd] ?? 0) + 1) >>> 0;
    this.#count++;
    try {
      this.modify(fd, events);
    } catch (error) {
      this.#targets[fd] = undefined;
      this.#count--;
      throw error;
    }
    // The poller is someone's again: those who waited for it to go idle are done waiting.
    this.#releaseIdleWaiters();
    // Not inside the caller: the loop may dispatch events at once.
    this.#running ??= Promise.resolve().then(() => this.#run());
  }

  /**
   * Changes the events `fd` is watched for. With 0 the descriptor leaves the
   * epoll set (a closed or failed socket would otherwise be reported ready
   * over and over) and comes back with the next non-zero mask.
   *
   * @throws {Error} when epoll refuses the change.
   */
  modify(fd: number, events: number): void {
    const old = this.#masks[fd];
    if (old === events) return;
    const op = events === 0 ? EPOLL_CTL_DEL : old === 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    this.#control(op, fd, events);
    this.#masks[fd] = events;
  }

  /**
   * Stops watching `fd`; none of its events already reported is delivered
   * from now on. Call it before closing `fd`, whose number the kernel may
   * then give to a new socket. When it was the last one, wakes the wait so
   * the loop ends.
   */
  remove(fd: number): void {
    if (this.#targets[fd] === undefined) return;
    const { libc } = this;
    if (this.#masks[fd] !== 0 && this.#failure === null) {
      if (libc.linux.epoll_ctl(this.#epfd, EPOLL_CTL_DEL, fd, this.#controlEvent) < 0) {
        pollLogger.debug("epoll_ctl(DEL, {fd}) failed: {error}", {
          fd,
          error: libc.error(libc.errno(), `remove descriptor ${fd} from epoll`),
        });
      }
    }
    this.#targets[fd] = undefined;
    this.#masks[fd] = 0;
    this.#count--;
    if (this.#count === 0 && this.#timers.size === 0 && this.#blocked) this.#wakeWait();
  }

  /** Wakes the wait blocked on the other thread, through the `eventfd`. */
  #wakeWait(): void {
    this.#counter[0] = 1n;
    this.libc.linux.write(this.#wakeFd, this.#counter, 8n);
  }

  /**
   * Calls `timer.fire` once `at` (`monotonicMs()`) has come, from the wait
   * loop: after the batch of events at hand, or when a wait bounded by it
   * returns. Moves it there if it was scheduled already. The loop runs
   * until it has fired, even with nothing registered. Allocates nothing: a
   * timer is its owner's, scheduled again and again. A timer scheduled
   * while a wait is blocked on the other thread, earlier than that wait
   * returns by itself, wakes it (one `write` to the `eventfd`).
   *
   * Accuracy: on time to within a batch of events while events come (a few
   * hundred microseconds at most); when idle, late by the hand-back from the
   * blocking thread (0.2-0.4 ms here), where `epoll_pwait2` is there, else
   * by up to a millisecond more (`epoll_wait`'s unit, rounded up).
   * A poller that fails hands its timers to Deno's.
   *
   * @throws {RangeError} when `at` is not a finite number.
   * @throws {Error} when the poller has failed.
   */
  schedule(timer: PollTimer, at: number): void {
    if (!Number.isFinite(at)) {
      throw new RangeError(`Cannot schedule a timer at ${at}: it must be a finite time`);
    }
    if (this.#failure !== null) throw this.#failure;
    this.#timers.schedule(timer, at);
    if (this.#blocked && at < this.#blockedUntil) this.#wakeWait();
    this.#running ??= Promise.resolve().then(() => this.#run());
  }

  /**
   * Unschedules `timer`; nothing happens if it is not scheduled. When it was
   * the last thing the loop ran for, wakes the wait so the loop ends.
   */
  cancel(timer: PollTimer): void {
    const timers = this.#timers;
    if (!timer.scheduled) return;
    timers.cancel(timer);
    if (this.#count === 0 && timers.size === 0 && this.#blocked) this.#wakeWait();
  }

  /**
   * Resolves once the wait loop has ended, when nothing is registered; at
   * once while something still is (its owner will wait for it instead), or
   * as soon as something registers again (the loop is then someone else's).
   */
  whenIdle(): Promise<void> {
    if (this.#count > 0 || this.#running === null) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #releaseIdleWaiters(): void {
    if (this.#idleWaiters.length === 0) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  #control(op: number, fd: number, events: number): void {
    const words = this.#controlWords;
    words[0] = events;
    words[EPOLL_DATA_OFFSET / 4] = fd;
    words[EPOLL_DATA_OFFSET / 4 + 1] = this.#generations[fd] ?? 0;
    const { libc } = this;
    if (libc.linux.epoll_ctl(this.#epfd, op, fd, this.#controlEvent) < 0) {
      throw libc.error(libc.errno(), `watch descriptor ${fd} with epoll`);
    }
  }

  async #run(): Promise<void> {
    try {
      const timers = this.#timers;
      while (this.#count > 0 || timers.size > 0) {
        // Most waits find events without blocking: then no promise is made for them.
        const waited = this.#wait();
        const n = typeof waited === "number" ? waited : await waited;
        for (let from = 0; from < n && this.#failure === null;) {
          from = this.#dispatch(from, Math.min(n, from + TURN_EVENTS));
          this.delivered = 0;
          if (timers.size > 0) this.#fireTimers();
          // What the events' handlers queued (promises, microtasks) runs before the next wait.
          await null;
        }
        if (n === 0) {
          if (timers.size > 0) this.#fireTimers();
          await null;
        }
      }
    } catch (error) {
      this.#fail(error instanceof Error ? error : new Error(String(error)));
    } finally {
      this.#running = null;
      this.#releaseIdleWaiters();
    }
  }

  /**
   * Waits for events; gives how many, at once when the wait did not block
   * (the common case under load), else as a promise. Asks without blocking
   * first (or, when the last wait found events and waits may sleep on this
   * thread, sleeps here: see {@linkcode Poller.#waitHere}), then on the
   * blocking thread ({@linkcode Poller.#sleep}). Every {@linkcode TURN_MS}
   * of waits that never blocked, one asks on the blocking thread
   * ({@linkcode Poller.#giveTurn}).
   *
   * @throws {Error} for a failure other than EINTR.
   */
  #wait(): number | Promise<number> {
    if (monotonicMs() - this.#lastTurn >= TURN_MS) return this.#giveTurn();
    let n: number;
    let waitedHere = false;
    if (this.#busy && mainThreadWaits && this.#hereSkips === 0) {
      // The wait here returns at once when events are ready: no look without blocking first.
      waitedHere = true;
      n = this.#waitHere();
    } else {
      n = this.libc.linux.epoll_wait(this.#epfd, this.#events, MAX_EVENTS, 0);
    }
    return this.#afterLook(n, waitedHere);
  }

  /**
   * Busy for a while without ever blocking: asks on the blocking thread this
   * time (with no timeout), so Deno's event loop turns and timers, signals
   * and its own I/O run.
   */
  async #giveTurn(): Promise<number> {
    const { epoll_wait, epoll_wait_blocking } = this.libc.linux;
    this.#lastTurn = monotonicMs();
    let n = await epoll_wait_blocking(this.#epfd, this.#events, MAX_EVENTS, 0);
    // Everything may have been removed meanwhile, with no wait blocked to be woken.
    if (this.#count === 0) return 0;
    if (n < 0) n = epoll_wait(this.#epfd, this.#events, MAX_EVENTS, 0); // errno is this thread's
    return this.#afterLook(n, false);
  }

  /** What a look that found `n` events (or failed) leads to: `n`, a wait that blocks, or an error. */
  #afterLook(n: number, waitedHere: boolean): number | Promise<number> {
    if (n === 0 && this.#busy && mainThreadWaits && !waitedHere) n = this.#waitHere();
    if (n === 0 && this.#timerEnded) {
      // The wait here slept until a timer: the loop fires it, and the program is still busy.
      this.#timerEnded = false;
      return 0;
    }
    this.#busy = n > 0;
    if (n === 0) {
      // Until the next timer of the poller's is due.
      const next = this.#timers.next;
      const left = next - monotonicMs();
      if (left <= 0) return 0; // one is due: the loop fires it
      return this.#sleep(next, left);
    }
    if (n > 0) return n;
    const code = this.libc.errno();
    if (code !== EINTR) throw this.libc.error(code, "wait for events with epoll_wait");
    if (this.#count === 0) return 0;
    return this.#wait();
  }

  /**
   * Blocks on the other thread until events come or the timer due at
   * `next` (in `left` ms). A wait that failed there is asked again here:
   * errno belongs to the thread that made the call, so only a call made on
   * this one can say why it failed (and a wait interrupted by a signal,
   * EINTR, simply finds the events now).
   */
  async #sleep(next: number, left: number): Promise<number> {
    let n: number;
    this.#blocked = true;
    this.#blockedUntil = next;
    try {
      n = next === Infinity
        ? await this.libc.linux.epoll_wait_blocking(this.#epfd, this.#events, MAX_EVENTS, -1)
        : await this.#waitUntil(left);
    } finally {
      this.#blocked = false;
      this.#lastTurn = monotonicMs();
    }
    if (this.#count === 0 && this.#timers.size === 0) return 0; // woken to end the loop
    if (n < 0) return this.#wait(); // ask again here, to learn why
    return n;
  }

  /**
   * Waits on the blocking thread for events, or `ms` milliseconds: to the
   * nanosecond with `epoll_pwait2` where the C library and the kernel have
   * it (the timer then fires a few hundred microseconds late, the hand-back
   * from the other thread, instead of up to a millisecond more), else to
   * the millisecond, rounded up. A failed `epoll_pwait2` (ENOSYS on a kernel
   * before 5.11; its errno is the other thread's) is not used again.
   */
  #waitUntil(ms: number): Promise<number> {
    const pwait2 = this.#pwait2;
    if (pwait2 === null) {
      // (epoll_wait takes an int: a timer weeks away wakes the wait early, and it waits again.)
      const timeout = Math.min(Math.ceil(ms), MAX_TIMEOUT_MS);
      return this.libc.linux.epoll_wait_blocking(this.#epfd, this.#events, MAX_EVENTS, timeout);
    }
    const timespec = this.#timespec;
    const seconds = Math.floor(ms / 1000);
    timespec[0] = BigInt(seconds);
    timespec[1] = BigInt(Math.ceil((ms - seconds * 1000) * 1e6));
    return pwait2(this.#epfd, this.#events, MAX_EVENTS, timespec, null).then((n) => {
      if (n < 0) this.#pwait2 = null;
      return n;
    });
  }

  /**
   * Sleeps in `epoll_wait` on this thread for up to {@linkcode WAIT_HERE_MS}
   * (after looking without sleeping for the spin {@linkcode waitOnMainThread}
   * set), when the last look without blocking found events (a wait on the blocking
   * thread that found some does not count: the program was idle): the next event then wakes this thread
   * directly, with one switch instead of a blocking thread's wake-up and
   * Deno's hand-over. Nothing else of the program runs meanwhile, so a wait
   * here that finds nothing (the peer is quiet) is not tried again for a
   * number of waits that doubles each time, up to 1,024; a spin that finds
   * nothing is skipped likewise, up to {@linkcode MAX_SPIN_SKIPS} waits.
   */
  #waitHere(): number {
    if (this.#hereSkips > 0) {
      this.#hereSkips--;
      return 0;
    }
    const { epoll_wait } = this.libc.linux;
    let n = 0;
    // Not past the next timer of the poller's: the loop fires it.
    const next = this.#timers.next;
    if (spinMs > 0 && this.#spinSkips > 0) {
      this.#spinSkips--;
    } else if (spinMs > 0) {
      const until = Math.min(monotonicMs() + spinMs, next);
      do n = epoll_wait(this.#epfd, this.#events, MAX_EVENTS, 0); while (
        n === 0 && monotonicMs() < until
      );
      if (n !== 0) {
        this.#spinBackoff = 1;
      } else {
        this.#spinSkips = this.#spinBackoff;
        this.#spinBackoff = Math.min(this.#spinBackoff * 2, MAX_SPIN_SKIPS);
      }
    }
    if (n === 0 && next - monotonicMs() < WAIT_HERE_MS) return this.#waitForTimer(next);
    if (n === 0) n = epoll_wait(this.#epfd, this.#events, MAX_EVENTS, WAIT_HERE_MS);
    if (n > 0) {
      this.#hereBackoff = 1;
    } else if (n === 0) {
      this.#hereSkips = this.#hereBackoff;
      this.#hereBackoff = Math.min(this.#hereBackoff * 2, 1024);
    }
    return n;
  }

  /**
   * A wait here whose next timer (due at `next`) comes within
   * {@linkcode WAIT_HERE_MS}: sleeps here until it or an event, to the
   * nanosecond (`epoll_pwait2`), and a wait the timer ended is not one that
   * found nothing (`#timerEnded`: the program stays busy). Without
   * `epoll_pwait2` it returns 0 at once, and the wait goes to the blocking
   * thread, with its whole milliseconds.
   */
  #waitForTimer(next: number): number {
    const left = next - monotonicMs();
    if (left > 0) {
      const pwait2 = this.#pwait2Here;
      if (pwait2 === null) return 0;
      const timespec = this.#timespec;
      timespec[0] = 0n;
      timespec[1] = BigInt(Math.ceil(left * 1e6));
      const n = pwait2(this.#epfd, this.#events, MAX_EVENTS, timespec, null);
      if (n > 0) {
        this.#hereBackoff = 1;
        return n;
      }
      if (n < 0) {
        // ENOSYS (a kernel before 5.11), or EINTR: the next wait finds what is ready.
        if (this.libc.errno() !== EINTR) this.#pwait2Here = null;
        return 0;
      }
    }
    this.#timerEnded = true;
    return 0;
  }

  /**
   * Calls the targets of events `from` to `to`, or fewer once
   * {@linkcode TURN_BYTES} were delivered; returns where it stopped. A
   * function of its own, so V8 optimises it whole.
   */
  #dispatch(from: number, to: number): number {
    const words = this.#words;
    const targets = this.#targets;
    const generations = this.#generations;
    const wakeFd = this.#wakeFd;
    const stride = EPOLL_EVENT_SIZE / 4;
    const dataAt = EPOLL_DATA_OFFSET / 4;
    for (let i = from, at = from * stride; i < to; i++, at += stride) {
      const fd = words[at + dataAt];
      if (fd === wakeFd) {
        this.libc.linux.read(wakeFd, this.#counter, 8n);
        continue;
      }
      // Removed since the wait returned, or registered anew under the same number: not its event.
      const target = targets[fd];
      if (target === undefined || words[at + dataAt + 1] !== generations[fd]) continue;
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

  /** Fires the timers due by now (see `TimerHeap.fireDue`). */
  #fireTimers(): void {
    const now = monotonicMs();
    if (this.#timers.next <= now) this.#timers.fireDue(now, this.#dueTimers, timerThrew);
  }

  /**
   * Closes the epoll instance and its `eventfd`, when nothing is registered
   * and the loop has ended; `false` (and nothing closed) otherwise.
   */
  closeIfIdle(): boolean {
    if (this.#count > 0 || this.#running !== null || this.#failure !== null) return false;
    // (The loop runs while a timer is scheduled, so none is.)
    this.#failure = new Error("Cannot use this poller: it is closed");
    this.libc.symbols.close(this.#wakeFd);
    this.libc.symbols.close(this.#epfd);
    return true;
  }

  /** The poller cannot go on: tell every target, close, and let the next user make a new one. */
  #fail(error: Error): void {
    if (this.#failure !== null) return;
    this.#failure = error;
    pollLogger.error("The epoll poller failed; closing every socket it watched: {error}", {
      error,
    });
    this.#onFailure?.(this);
    // Timers go on as Deno's: their owners need not fail with the poller (a delayed echo on one
    // of Deno's sockets, say).
    this.#timers.handToDeno(monotonicMs(), timerThrew);
    const targets = this.#targets.slice();
    for (let fd = 0; fd < targets.length; fd++) {
      const target = targets[fd];
      if (target === undefined) continue;
      try {
        target.onPollerError(error);
      } catch (thrown) {
        pollLogger.error("Failing descriptor {fd} threw: {error}", { fd, error: thrown });
      }
      // A target that did not remove itself is forgotten all the same.
      if (this.#targets[fd] !== undefined) {
        this.#targets[fd] = undefined;
        this.#count--;
      }
    }
    this.libc.symbols.close(this.#wakeFd);
    this.libc.symbols.close(this.#epfd);
  }
}

/** A timer threw: its owner handles its own errors, so this is a bug; say so and go on. */
function timerThrew(error: unknown): void {
  pollLogger.error("A timer of the poller threw: {error}", { error });
}

let shared: Poller | string | undefined;
/** Told of this isolate's poller when it is made, and told `null` when it is gone. */
let observer: ((poller: Poller | null) => void) | null = null;

/**
 * Tells `observe` of this isolate's poller: at once if there is one, then
 * whenever one is made, and `null` when it is closed or fails. A worker of a
 * pool reports its poller this way, so the pool can close the poller's
 * descriptors if the worker dies (see `_reclaim.ts`).
 */
export function observePoller(observe: (poller: Poller | null) => void): void {
  observer = observe;
  if (shared instanceof Poller) observe(shared);
}

/**
 * Closes this isolate's poller once nothing is registered and its loop has
 * ended, for a worker about to end: its descriptors belong to the process
 * and would outlive the worker. The next {@linkcode getPoller} makes another.
 */
export async function closeIdlePoller(): Promise<void> {
  if (!(shared instanceof Poller)) return;
  const poller = shared;
  await poller.whenIdle();
  if (shared === poller && poller.closeIfIdle()) {
    shared = undefined;
    observer?.(null);
  }
}

/** This isolate's poller if it has one (made, and neither failed nor closed); else `null`. */
export function runningPoller(): Poller | null {
  return shared instanceof Poller ? shared : null;
}

/**
 * The process's poller, made on first use; or a sentence saying why there
 * is none here (not Linux, no `--allow-ffi`, epoll refused). A poller that
 * failed is replaced by the next call.
 */
export function getPoller(): Poller | string {
  if (shared !== undefined) return shared;
  const libc = loadLibc();
  if (!isLibc(libc)) return shared = libc.reason;
  if (libc.linux === null) return shared = `epoll is Linux only (this is ${Deno.build.os})`;
  try {
    const poller = new Poller(libc as EpollLibc, (failed) => {
      if (shared !== failed) return;
      shared = undefined;
      observer?.(null);
    });
    shared = poller;
    observer?.(poller);
    return poller;
  } catch (error) {
    return shared = `cannot create an epoll instance: ${(error as Error).message}`;
  }
}
