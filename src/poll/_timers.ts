/**
 * The poller's timers: callbacks due at a time, kept in a binary min-heap
 * by when they are due. The poller runs those due after each batch of
 * events and bounds its waits by the earliest, so a timer fires on time
 * however busy the poller is. Deno's own timers do not, under load: they
 * run on the event loop's turns, and a turn whose wait returns at once (the
 * poller's every 10 ms, when events keep coming) often skips a due timer
 * (see `TURN_MS` in `_poller.ts`).
 *
 * A timer is an object of its owner's, scheduled again and again: the heap
 * keeps each timer's place in it on the timer itself, so scheduling,
 * moving and cancelling one allocate nothing (libuv's timers are kept the
 * same way).
 *
 * @module
 */

/** A callback the poller calls once it is due; see {@linkcode TimerHeap}. */
export class PollTimer {
  /** When it is due, in `monotonicMs()`; meaningful while scheduled. */
  at = 0;
  /** Its place in the heap; -1 while not scheduled, {@linkcode TAKEN} once taken to fire. */
  slot = -1;
  /** How many times it was handed to Deno's timers (see `TimerHeap.handToDeno`). */
  handOvers = 0;
  /** What runs when it is due (once per scheduling). */
  readonly fire: () => void;

  constructor(fire: () => void) {
    this.fire = fire;
  }

  /** Whether it waits to fire. */
  get scheduled(): boolean {
    return this.slot !== -1;
  }
}

/** The `slot` of a timer taken from the heap to fire, until it fires or is cancelled. */
const TAKEN = -2;

/** Timers ordered by when they are due, the earliest first. */
export class TimerHeap {
  readonly #heap: PollTimer[] = [];

  /** How many timers are scheduled. */
  get size(): number {
    return this.#heap.length;
  }

  /** When the earliest timer is due (`monotonicMs()`); `Infinity` when none is scheduled. */
  get next(): number {
    return this.#heap.length === 0 ? Infinity : this.#heap[0].at;
  }

  /** Schedules `timer` at `at`, or moves it there if it is scheduled already. */
  schedule(timer: PollTimer, at: number): void {
    const heap = this.#heap;
    if (timer.slot < 0) {
      // Not in the heap (a timer taken to fire is scheduled anew: it will not fire now).
      timer.at = at;
      timer.slot = heap.length;
      heap.push(timer);
      this.#up(timer.slot);
      return;
    }
    const earlier = at < timer.at;
    timer.at = at;
    if (earlier) this.#up(timer.slot);
    else this.#down(timer.slot);
  }

  /** Unschedules `timer`; nothing happens if it is not scheduled. */
  cancel(timer: PollTimer): void {
    const slot = timer.slot;
    timer.slot = -1;
    if (slot < 0) return; // not scheduled, or taken to fire: it will not
    const heap = this.#heap;
    const last = heap.pop()!;
    if (last === timer) return;
    heap[slot] = last;
    last.slot = slot;
    this.#up(slot);
    this.#down(last.slot);
  }

  /**
   * Fires the timers due by `now`, the earliest first, each once: those
   * taken are set apart before any fires, so a timer that one of them
   * schedules again, however soon, waits for the next call, and one that
   * one of them cancels does not fire. `due` is the caller's array, reused
   * (nothing allocated once it has grown). A timer that throws is reported
   * to `thrown`, and the rest fire.
   */
  fireDue(now: number, due: PollTimer[], thrown: (error: unknown) => void): void {
    const heap = this.#heap;
    let count = 0;
    while (heap.length > 0 && heap[0].at <= now) {
      const timer = heap[0];
      this.cancel(timer);
      timer.slot = TAKEN;
      due[count++] = timer;
    }
    for (let i = 0; i < count; i++) {
      const timer = due[i];
      due[i] = undefined!; // nothing kept past its firing
      if (timer.slot !== TAKEN) continue; // cancelled, or scheduled anew, by one before it
      timer.slot = -1;
      try {
        timer.fire();
      } catch (error) {
        thrown(error);
      }
    }
  }

  /**
   * Hands every timer to Deno's timers (`now` is `monotonicMs()`), for a
   * poller that cannot go on: each still fires once when due, unless its
   * owner cancels it (or schedules it anew) meanwhile. A timer that throws
   * is reported to `thrown`.
   */
  handToDeno(now: number, thrown: (error: unknown) => void): void {
    for (const timer of this.#heap) {
      timer.slot = TAKEN;
      // Scheduled anew on another poller that failed too, it is handed over again: this one's
      // time is then not its time.
      const handOver = ++timer.handOvers;
      setTimeout(() => {
        if (timer.slot !== TAKEN || timer.handOvers !== handOver) return;
        timer.slot = -1;
        try {
          timer.fire();
        } catch (error) {
          thrown(error);
        }
      }, Math.max(0, Math.ceil(timer.at - now)));
    }
    this.#heap.length = 0;
  }

  #up(slot: number): void {
    const heap = this.#heap;
    const timer = heap[slot];
    while (slot > 0) {
      const parentSlot = (slot - 1) >> 1;
      const parent = heap[parentSlot];
      if (parent.at <= timer.at) break;
      heap[slot] = parent;
      parent.slot = slot;
      slot = parentSlot;
    }
    heap[slot] = timer;
    timer.slot = slot;
  }

  #down(slot: number): void {
    const heap = this.#heap;
    const length = heap.length;
    const timer = heap[slot];
    for (;;) {
      let child = 2 * slot + 1;
      if (child >= length) break;
      if (child + 1 < length && heap[child + 1].at < heap[child].at) child++;
      const next = heap[child];
      if (timer.at <= next.at) break;
      heap[slot] = next;
      next.slot = slot;
      slot = child;
    }
    heap[slot] = timer;
    timer.slot = slot;
  }
}
