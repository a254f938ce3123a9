/**
 * A server-wide budget for the bytes its connections hold on their clients'
 * behalf: writes the kernel has not taken yet, what stream readers keep
 * unread, what an `until` echo keeps until its terminator. Each connection
 * charges what it takes in and gives back what it lets go of.
 *
 * Past the budget, connections stop reading (TCP backpressure: their peers'
 * sends wait in the kernel, then in the peers), the ones holding the most
 * first: enough of them that those still reading hold at most three
 * quarters of what the paused ones leave of the budget. A connection that
 * holds no more than {@linkcode SMALL_HOLDING} is never paused: it may need
 * one more read to finish its message and let go of what it holds (a line
 * in two segments, an `until` request in two reads), and pausing it could
 * stall it for good. One paused while it held more reads again as soon as
 * it holds no more than that (its writes went out, its reader shrank). While the budget is spent, reads
 * take at most {@linkcode SPENT_BUDGET_READ} bytes, so a connection adds
 * little before it is paused in turn. Once the total falls to three
 * quarters of the budget, every paused connection reads again.
 *
 * Memory held for peers therefore stays within the budget plus the read
 * that crossed it, plus at most a small holding and one small read per
 * connection. A paused connection whose message cannot complete (an `until`
 * flood that never sends its terminator) waits until buffers drain, its
 * peer gives up, `idleTimeout` or shutdown; the others are served meanwhile.
 *
 * @module
 */

/** A connection as the budget sees it: what it holds, and a way to stop its reading. */
export interface BudgetHolder {
  /** Bytes it holds now (kept up to date by {@linkcode BufferBudget.charge}). */
  held: number;
  /** Whether it is reading now (not paused for any reason, not closing). */
  isReading(): boolean;
  /** Stops reading until {@linkcode BudgetHolder.resumeForBudget}. */
  pauseForBudget(): void;
  /** Reads again, unless something else keeps it paused. */
  resumeForBudget(): void;
}

/**
 * The default server-wide budget: 64 MiB.
 *
 * @example A larger budget for a server that buffers on purpose
 * ```ts
 * import { DEFAULT_MAX_BUFFERED } from "@x/echo/tcp";
 * import { serveEcho } from "@x/echo";
 *
 * const server = serveEcho({ port: 0, mode: "until", maxBuffered: 4 * DEFAULT_MAX_BUFFERED });
 * await server.shutdown();
 * ```
 */
export const DEFAULT_MAX_BUFFERED = 64 * 1024 * 1024;

/** The most bytes one read takes while the budget is spent: 16 KiB. */
export const SPENT_BUDGET_READ = 16 * 1024;
/** What a connection may hold and never be paused for the budget: 16 KiB. */
export const SMALL_HOLDING = 16 * 1024;

/** See the module documentation. */
export class BufferBudget {
  /** The most bytes held before reading pauses. */
  readonly limit: number;
  /** Bytes held now by all connections. */
  used = 0;
  /** `true` while more than `limit` is held: reads are kept small. */
  spent = false;
  /** The highest `used` has been. */
  peak = 0;
  /** How many times a connection was paused for the budget. */
  pauses = 0;
  readonly #low: number;
  readonly #holders: () => Iterable<BudgetHolder>;
  readonly #paused = new Set<BudgetHolder>();
  /**
   * `used` when readers were last looked over: while the budget stays spent,
   * they are looked over again only once it has grown by a small read, not
   * on every charge (a look goes over every connection).
   */
  #relievedAt = 0;

  /** A budget of `limit` bytes over the connections `holders` lists when asked. */
  constructor(limit: number, holders: () => Iterable<BudgetHolder>) {
    this.limit = limit;
    this.#low = Math.floor(limit * 0.75);
    this.#holders = holders;
  }

  /** Connections paused for the budget now. */
  get paused(): number {
    return this.#paused.size;
  }

  /** `holder` took in (`delta` > 0) or let go of (`delta` < 0) bytes. */
  charge(holder: BudgetHolder, delta: number): void {
    holder.held += delta;
    const used = this.used += delta;
    this.spent = used > this.limit;
    if (delta > 0) {
      if (used > this.peak) this.peak = used;
      if (used > this.limit && used > this.#relievedAt) this.#relieve();
    } else {
      if (used <= this.limit) this.#relievedAt = 0;
      if (this.#paused.size === 0) return;
      if (used <= this.#low) {
        this.#resumeAll();
      } else if (holder.held <= SMALL_HOLDING && this.#paused.delete(holder)) {
        // It holds little now (its writes went out, its reader shrank): a small holding
        // is never paused, as it may need one more read to let go of it.
        holder.resumeForBudget();
      }
    }
  }

  /** `holder` is gone (closed): its bytes no longer count, and it is no longer paused. */
  release(holder: BudgetHolder): void {
    this.#paused.delete(holder);
    if (holder.held !== 0) this.charge(holder, -holder.held);
  }

  /** Pauses the largest readers until the readers hold their share of what is left. */
  #relieve(): void {
    this.#relievedAt = this.used + SPENT_BUDGET_READ;
    const readers: BudgetHolder[] = [];
    let readingHeld = 0;
    for (const holder of this.#holders()) {
      if (holder.held > SMALL_HOLDING && holder.isReading()) {
        readers.push(holder);
        readingHeld += holder.held;
      }
    }
    const left = Math.max(0, this.limit - (this.used - readingHeld));
    const allowed = Math.floor(left * 0.75);
    if (readingHeld <= allowed) return;
    readers.sort((a, b) => b.held - a.held);
    for (const holder of readers) {
      if (readingHeld <= allowed) break;
      readingHeld -= holder.held;
      this.#paused.add(holder);
      this.pauses++;
      holder.pauseForBudget();
    }
  }

  #resumeAll(): void {
    const paused = [...this.#paused];
    this.#paused.clear();
    for (const holder of paused) holder.resumeForBudget();
  }
}
