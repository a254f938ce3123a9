/**
 * Closing connections that stay quiet too long, at no cost per read: one
 * clock per server ticks every quarter of the timeout, each transport notes
 * the tick of its last read or write (one integer store), and each tick
 * closes the connections that have been quiet for a whole timeout. A quiet
 * connection is closed between 1 and 1.25 timeouts after its last traffic.
 *
 * @module
 */

/** Ticks per timeout. */
const TICKS = 4;

/** Something the clock can close: a transport with the tick of its last traffic. */
export interface IdleTracked {
  /** The clock's `tick` at the last read or write. */
  readonly lastActive: number;
  /** Closes the connection because it was quiet too long; `true` if it was open until now. */
  closeIdle(): boolean;
}

/** The clock of one server; see the module documentation. */
export class IdleClock {
  /** The current tick: transports copy it on each read and write. */
  tick = 0;
  /** Connections closed for being quiet. */
  closed = 0;
  readonly #timer: ReturnType<typeof setInterval>;

  /**
   * Starts ticking; `tracked` gives the open connections at each tick, and
   * `onClosed` is told of each one closed. Stop it with {@linkcode IdleClock.stop}.
   */
  constructor(
    timeoutMs: number,
    tracked: () => Iterable<IdleTracked>,
    onClosed: () => void = () => {},
  ) {
    const interval = Math.max(1, Math.ceil(timeoutMs / TICKS));
    this.#timer = setInterval(() => {
      const tick = ++this.tick;
      // Quiet since before tick - TICKS: no traffic for at least TICKS whole intervals.
      for (const connection of tracked()) {
        if (tick - connection.lastActive > TICKS && connection.closeIdle()) {
          this.closed++;
          onClosed();
        }
      }
    }, interval);
  }

  /** Stops ticking. */
  stop(): void {
    clearInterval(this.#timer);
  }
}
