/**
 * What every connection of one bench run shares: the latencies, the counts,
 * the errors (each distinct message once, with how often it came), whether
 * the run is stopping, and the open-loop schedule.
 *
 * @module
 */

import type { LatencyHistogram } from "./histogram.ts";

/** Distinct error messages, each with how many times it came. */
export class ErrorTally {
  readonly #counts = new Map<string, number>();
  #total = 0;

  add(error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    this.#counts.set(message, (this.#counts.get(message) ?? 0) + 1);
    this.#total++;
  }

  get total(): number {
    return this.#total;
  }

  /** The messages, the most frequent first. */
  entries(): { message: string; count: number }[] {
    return [...this.#counts].map(([message, count]) => ({ message, count }))
      .sort((a, b) => b.count - a.count);
  }
}

/**
 * When each request of a connection is due, for open-loop load: `rate`
 * requests per second over `connections` connections, each connection's
 * schedule offset from the others' so their sends spread evenly.
 */
export class Schedule {
  /** Milliseconds between two requests of one connection. */
  readonly intervalMs: number;
  readonly #start: number;
  readonly #connections: number;

  constructor(rate: number, connections: number, start: number) {
    this.intervalMs = (1000 * connections) / rate;
    this.#start = start;
    this.#connections = connections;
  }

  /** When connection `index`'s first request is due. */
  firstDue(index: number): number {
    return this.#start + (this.intervalMs * index) / this.#connections;
  }
}

/** The state one run's connections share. */
export class LoadState {
  readonly latencies: LatencyHistogram;
  readonly errors: ErrorTally = new ErrorTally();
  /** Round trips completed. */
  requests = 0;
  /** Answers that differ from what was sent. */
  wrong = 0;
  /** Set when the run ends: no request is sent after it. */
  stopping = false;
  /** Connections (UDP: sockets) that failed for good. */
  failed = 0;
  /** Requests in flight when the run stopped. */
  unfinished = 0;
  /** UDP: datagrams sent, their echoes never seen, seen after their timeout, seen twice, and seen after a later one's. */
  readonly udp = { sent: 0, lost: 0, late: 0, duplicates: 0, reordered: 0 };
  readonly schedule: Schedule | null;
  readonly #stoppers = new Set<() => void>();

  constructor(schedule: Schedule | null, latencies: LatencyHistogram) {
    this.schedule = schedule;
    this.latencies = latencies;
  }

  /** Registers what ends a connection when the run stops; returns its removal. */
  onStop(stop: () => void): () => void {
    this.#stoppers.add(stop);
    return () => this.#stoppers.delete(stop);
  }

  /** Stops the run: nothing more is sent, and every connection is ended. */
  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    for (const stop of [...this.#stoppers]) stop();
    this.#stoppers.clear();
  }
}
