/**
 * A timer that fires on time however busy the poller is: one of the
 * poller's own (see `Poller.schedule`) where this isolate has a poller,
 * else Deno's. Deno's timers run on its event loop's turns, which a busy
 * poller gives every 10 ms: a delay asked of them comes late by up to that
 * much, and the timers due meanwhile fire together. Where there is no
 * poller, nothing keeps the event loop from its turns, and Deno's timers
 * are as good.
 *
 * One object per owner, set again and again: setting it allocates nothing
 * on the poller's side.
 *
 * @module
 */

import { type Poller, runningPoller } from "./_poller.ts";
import { PollTimer } from "./_timers.ts";
import { monotonicMs } from "../libc/_clock.ts";

/** See the module documentation. */
export class Alarm {
  readonly #fire: () => void;
  readonly #timer: PollTimer;
  /** The poller it is set on; `null` when it is not set there. */
  #poller: Poller | null = null;
  /** Deno's timer, when it is set there. */
  #timeout: ReturnType<typeof setTimeout> | undefined;

  /** An alarm that calls `fire` each time it goes off. */
  constructor(fire: () => void) {
    this.#fire = fire;
    this.#timer = new PollTimer(() => {
      this.#poller = null;
      fire();
    });
  }

  /** Whether it is set and has not gone off. */
  get set(): boolean {
    return this.#poller !== null || this.#timeout !== undefined;
  }

  /** Goes off in `ms` milliseconds; replaces the time it was set to. */
  setIn(ms: number): void {
    const poller = runningPoller();
    if (poller !== null) {
      if (this.#timeout !== undefined) this.#clearTimeout();
      this.#poller = poller;
      poller.schedule(this.#timer, monotonicMs() + ms);
      return;
    }
    this.clear();
    this.#timeout = setTimeout(() => {
      this.#timeout = undefined;
      this.#fire();
    }, Math.max(0, Math.ceil(ms)));
  }

  /** Unsets it: it does not go off. */
  clear(): void {
    if (this.#poller !== null) {
      this.#poller.cancel(this.#timer);
      this.#poller = null;
    }
    if (this.#timeout !== undefined) this.#clearTimeout();
  }

  #clearTimeout(): void {
    clearTimeout(this.#timeout);
    this.#timeout = undefined;
  }
}
