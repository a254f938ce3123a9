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
 * holds nothing is never paused, and one paused while it held a little
 * reads again as soon as it holds nothing (its writes went out), so clients
 * whose bytes go straight back out are still served. While the budget is spent, reads take at most
 * {@linkcode SPENT_BUDGET_READ} bytes, so a connection that starts holding
 * then adds little before it is paused in turn. Once the total falls to
 * three quarters of the budget, every paused connection reads again.
 *
 * Memory held for peers therefore stays within the budget plus the read
 * that crossed it, plus at most one small read per connection that was
 * still reading when the budget ran out.
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
 * import { DEFAULT_MAX_BUFFERED, serveEcho } from "@x/echo";
 *
 * const server = serveEcho({ port: 0, mode: "until", maxBuffered: 4 * DEFAULT_MAX_BUFFERED });
 * await server.shutdown();
 * ```
 */
export const DEFAULT_MAX_BUFFERED = 64 * 1024 * 1024;

/** The most bytes one read takes while the budget is spent: 16 KiB. */
export const SPENT_BUDGET_READ = 16 * 1024;

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
      if (used > this.limit) this.#relieve();
    } else if (this.#paused.size > 0) {
      if (used <= this.#low) {
        this.#resumeAll();
      } else if (holder.held === 0 && this.#paused.delete(holder)) {
        // It holds nothing any more (its writes went out): it no longer needs to wait.
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
    const readers: BudgetHolder[] = [];
    let readingHeld = 0;
    for (const holder of this.#holders()) {
      if (holder.held > 0 && holder.isReading()) {
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
