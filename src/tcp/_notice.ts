/**
 * Events that may come by the thousand (connections refused at the limit,
 * idle ones closed) are logged at info as one line per second with their
 * count, as nginx does for `limit_conn`, rather than one line each (which
 * stays at debug).
 *
 * @module
 */

/** How often a summed notice is logged, at most: once a second. */
const PERIOD_MS = 1000;

/** Counts events and logs their number once per period; see the module doc. */
export class SummedNotice {
  readonly #log: (count: number) => void;
  #count = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** Logs with `log(count)` the events of each period in which some came. */
  constructor(log: (count: number) => void) {
    this.#log = log;
  }

  /** One more event; the first of a period starts it. */
  add(): void {
    if (this.#count++ > 0) return;
    const timer = setTimeout(() => this.#flush(), PERIOD_MS);
    Deno.unrefTimer(timer); // a notice never keeps the program alive
    this.#timer = timer;
  }

  /** Logs what is counted now, and stops. */
  stop(): void {
    clearTimeout(this.#timer);
    if (this.#count > 0) this.#flush();
  }

  #flush(): void {
    const count = this.#count;
    this.#count = 0;
    this.#timer = undefined;
    this.#log(count);
  }
}
