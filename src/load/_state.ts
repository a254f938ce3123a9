/**
 * What every connection of one bench run shares: the latencies, the counts,
 * the errors (each distinct message once, with how often it came), whether
 * the run is stopping, and the open-loop schedule.
 *
 * @module
 */

import type { LatencyHistogram } from "./histogram.ts";
import { Alarm } from "../poll/_alarm.ts";
import { monotonicMs } from "../libc/_clock.ts";

/** Distinct error messages, each with how many times it came. */
export class ErrorTally {
  readonly #counts = new Map<string, number>();
  #total = 0;

  add(error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    this.#counts.set(message, (this.#counts.get(message) ?? 0) + 1);
    this.#total++;
  }

  /** Adds `count` occurrences of `message`: another tally's entry, when tallies are merged. */
  addCount(message: string, count: number): void {
    this.#counts.set(message, (this.#counts.get(message) ?? 0) + count);
    this.#total += count;
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
  readonly #connections: number;

  constructor(rate: number, connections: number) {
    this.intervalMs = (1000 * connections) / rate;
    this.#connections = connections;
  }

  /**
   * How long after the load starts connection `index`'s first request is
   * due: the connections' schedules interleave evenly.
   */
  offset(index: number): number {
    return (this.intervalMs * index) / this.#connections;
  }
}

/**
 * When one connection of an open-loop run sends its next request. A
 * request already past due when the last echo came (the server held it
 * back) goes at once and counts from when it was due; else a timer sends
 * it, and it counts from when the timer fired: the timer's lateness is this
 * client's, not the server's.
 *
 * The timer is an `Alarm`: the poller's own, where there is a poller.
 * Deno's timers run late while the poller is busy (on its turns every
 * 10 ms): at 40,000 requests/s over 1,000 UDP sockets, the requests they
 * held back went out in bursts that overflowed the server's receive
 * buffer, and the datagrams lost charged a second of latency to the
 * requests of their sockets that came due meanwhile.
 */
export class Pacer {
  readonly #schedule: Schedule;
  readonly #send: (startedAt: number) => void;
  #nextDue: number;
  readonly #alarm = new Alarm(() => this.#send(monotonicMs()));
  /** `start` was called: `#nextDue` is a time, no longer an offset. */
  #started = false;

  /** Paces connection `index` of the run; `send` sends a request counted from `startedAt`. */
  constructor(schedule: Schedule, index: number, send: (startedAt: number) => void) {
    this.#schedule = schedule;
    this.#send = send;
    // Until `start`: the offset. Every connection's schedule starts at the load's start, once
    // the connections are made, so the time they took to connect is not charged to the rate.
    this.#nextDue = schedule.offset(index);
  }

  /**
   * Starts the schedule at `at`, the load's start. A connection made after
   * it (the connects outlasted their allowance) finds its first requests
   * past due: they go at once, counted from when they were due, not dropped.
   */
  start(at: number): void {
    this.#nextDue += at;
    this.#started = true;
  }

  /**
   * Requests that fell due and were not sent by `now`: the run stopped
   * before them. None before `start` (the run stopped while connecting).
   */
  overdue(now: number): number {
    if (!this.#started || now < this.#nextDue) return 0;
    return Math.floor((now - this.#nextDue) / this.#schedule.intervalMs) + 1;
  }

  /** Sends the next request, or sets the timer that will; `now` is `monotonicMs()`. */
  next(now: number): void {
    const due = this.#nextDue;
    this.#nextDue = due + this.#schedule.intervalMs;
    if (due <= now) return this.#send(due);
    this.#alarm.setIn(due - now);
  }

  /** Cancels a request the timer would send. */
  cancel(): void {
    this.#alarm.clear();
  }
}

/**
 * The part of a connection's life that the TCP and UDP loads share, as
 * their base class: it starts only while the run goes on, is ended by the
 * run's stop, sends its next request at once (closed loop) or through its
 * {@linkcode Pacer} (open loop), and resolves `lost` when over.
 *
 * A base class rather than an object of its own, and no pacer in closed
 * loop: with 1,000 connections each object a request passes through is a
 * cache miss, and these hops cost more user time than the rest of the
 * request's JavaScript (measured with `perf`).
 */
export abstract class LoadConnection {
  /** What the run's connections share. */
  protected readonly state: LoadState;
  /** Open loop: when each request is due; `null` in closed loop. */
  readonly #pacer: Pacer | null;
  readonly #lost = Promise.withResolvers<void>();
  #removeStopper: () => void = () => {};
  /** Over: nothing more is sent. */
  protected ended = false;
  /** This connection's place in the run: its slot in `state.startTimes`. */
  readonly #index: number;

  /** Connection `index` of the run that shares `state`. */
  constructor(state: LoadState, index: number) {
    this.state = state;
    this.#index = index;
    const schedule = state.schedule;
    this.#pacer = schedule === null ? null : new Pacer(schedule, index, (at) => this.send(at));
  }

  /** Sends a request, counted from `startedAt`. */
  protected abstract send(startedAt: number): void;

  /** The run stopped: ends the connection. */
  protected abstract stop(): void;

  /** Resolves once the connection is over. */
  get lost(): Promise<void> {
    return this.#lost.promise;
  }

  /**
   * At `connectionMade`: sends the first request once the load has started
   * (at once if it has), or aborts when the run has stopped meanwhile.
   */
  protected begin(transport: { abort(): void }): void {
    if (this.state.stopping) return transport.abort();
    this.#removeStopper = this.state.onStop(() => this.stop());
    this.state.onStart(() => {
      this.#pacer?.start(this.state.startedAt);
      this.next(monotonicMs());
    });
  }

  /** The request now sent counts from `startedAt`. */
  protected startCounting(startedAt: number): void {
    this.state.startTimes[this.#index] = startedAt;
  }

  /** The request in flight was answered at `now`: its latency and the count are recorded. */
  protected answered(now: number): void {
    const state = this.state;
    state.latencies.recordMs(now - state.startTimes[this.#index]);
    state.requests++;
  }

  /** Sends the next request, now or when it is due, unless the run or the connection is over. */
  protected next(now: number): void {
    if (this.state.stopping || this.ended) return;
    const pacer = this.#pacer;
    if (pacer === null) this.send(now);
    else pacer.next(now);
  }

  /**
   * The run stopped: cancels a request the pacer's timer would send, and
   * returns how many requests are left unfinished (`inFlight`, and in open
   * loop those that fell due while they waited for it).
   */
  protected cancel(inFlight: boolean): number {
    const pacer = this.#pacer;
    pacer?.cancel();
    return (inFlight ? 1 : 0) + (pacer === null ? 0 : pacer.overdue(monotonicMs()));
  }

  /** At `connectionLost`: nothing more is sent, and `lost` resolves. */
  protected end(): void {
    this.ended = true;
    this.#pacer?.cancel();
    this.#removeStopper();
    this.#lost.resolve();
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
  /** Requests in flight when the run stopped. */
  unfinished = 0;
  /** UDP: datagrams sent, their echoes never seen, seen after their timeout, seen twice, and seen after a later one's. */
  readonly udp = { sent: 0, lost: 0, late: 0, duplicates: 0, reordered: 0 };
  readonly schedule: Schedule | null;
  /**
   * When each connection's request in flight started counting, by
   * connection index. In one array rather than a field of each connection:
   * a fractional number in a field lives in a heap object of its own, one
   * more cache miss per request with many connections.
   */
  readonly startTimes: Float64Array;
  /**
   * When the load started (`monotonicMs()`), all connections being made or
   * failed: the start of the measured period and of every schedule. `NaN`
   * until then.
   */
  startedAt = NaN;
  /** When the run stopped (`monotonicMs()`), before its connections were ended: `NaN` until then. */
  stoppedAt = NaN;
  readonly #stoppers = new Set<() => void>();
  /** What waits for the load to start: the connections made before it. */
  #starters: (() => void)[] = [];

  /** The state of a run of `connections` connections, paced by `schedule` (`null`: closed loop). */
  constructor(schedule: Schedule | null, latencies: LatencyHistogram, connections: number) {
    this.schedule = schedule;
    this.latencies = latencies;
    this.startTimes = new Float64Array(connections);
  }

  /** Registers what ends a connection when the run stops; returns its removal. */
  onStop(stop: () => void): () => void {
    this.#stoppers.add(stop);
    return () => this.#stoppers.delete(stop);
  }

  /** Whether the load has started (see {@linkcode LoadState.start}). */
  get started(): boolean {
    return !Number.isNaN(this.startedAt);
  }

  /** Runs `start` when the load starts: at once if it has; never once the run is stopping. */
  onStart(start: () => void): void {
    if (this.stopping) return;
    if (this.started) start();
    else this.#starters.push(start);
  }

  /**
   * Starts the load at `now`: the connections made so far send their first
   * requests (or, in open loop, start their schedules), all from this one
   * instant. Does nothing once stopping or started.
   */
  start(now: number): void {
    if (this.started || this.stopping) return;
    const starters = this.#starters;
    this.#starters = [];
    this.startedAt = now;
    for (const start of starters) {
      try {
        start();
      } catch (error) {
        this.errors.add(error); // a first send that threw: counted, as a later one's would be
      }
    }
  }

  /** Stops the run: nothing more is sent, and every connection is ended. */
  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.stoppedAt = monotonicMs();
    this.#starters = [];
    for (const stop of [...this.#stoppers]) stop();
    this.#stoppers.clear();
  }
}
