/**
 * One TCP connection of a bench run, on the protocol API: it sends the
 * message, checks every byte of the echo as it arrives (reading while it
 * still writes, so a message larger than the socket buffers cannot stall
 * both ends), records the latency, and sends the next: at once (closed
 * loop) or when it is due (open loop, the latency then counted from when it
 * was due).
 *
 * "At once" is once the events at hand are handled: the connections
 * answered during one turn of the poller send their next requests together,
 * after it. The client then makes its reads together and its writes
 * together, and the server is handed several requests at a time. Against
 * sending from inside each read, at 1,000 connections, the client's CPU time
 * per request was 5% lower over eight alternating runs (BENCHMARKS.md); at
 * 10 connections no different. A closed-loop request's latency counts from
 * its send, so the wait for the others' is not charged to the server.
 *
 * @module
 */

import type { Protocol, Transport } from "../core/protocol.ts";
import { LoadConnection, type LoadState } from "./_state.ts";
import { matchesPattern } from "./_pattern.ts";
import { monotonicMs } from "../libc/_clock.ts";

/** The most bytes handed to `write` at once: the rest follows as the socket drains. */
const CHUNK = 1024 * 1024;

/**
 * Connections answered during the events at hand: they send next after
 * them. The array keeps its length (no allocation once grown to the most
 * connections answered in one turn); `waiting` says how many are in use.
 */
const answered: (TcpLoad | null)[] = [];
let waiting = 0;

/** A connection's closed or open loop; see the module documentation. */
export class TcpLoad extends LoadConnection implements Protocol {
  readonly #message: Uint8Array;
  #transport: Transport | null = null;
  /** A request is in flight. */
  #busy = false;
  #written = 0;
  #received = 0;
  #writingPaused = false;

  /** Closes the connection after its first echo (churn). */
  readonly #once: boolean;
  /** The connection failed (an error was counted). */
  failed = false;
  /** When `connectionMade` was called. */
  connectedAt = 0;

  /**
   * Whether a request went out on this connection (its bytes, or some of
   * them, were written): with churn, a connection that sent none counts its
   * request as unfinished when its connect returns (one that did is
   * counted by then, answered or unfinished at the stop).
   */
  get requested(): boolean {
    return this.#written > 0;
  }

  constructor(state: LoadState, message: Uint8Array, index: number, once: boolean) {
    super(state, index);
    this.#once = once;
    this.#message = message;
  }

  connectionMade(transport: Transport): void {
    this.connectedAt = monotonicMs();
    this.#transport = transport;
    this.begin(transport);
  }

  dataReceived(data: Uint8Array): void {
    const message = this.#message;
    const at = this.#received;
    const n = data.length;
    if (!this.#busy || at + n > this.#written) {
      const more = at + n - this.#written;
      return this.#wrong(
        `Cannot verify the echo: the server sent ${more} byte${more === 1 ? "" : "s"} more ` +
          `than it was sent`,
      );
    }
    if (!matchesPattern(data, at)) {
      let i = 0;
      while (data[i] === message[at + i]) i++;
      return this.#wrong(`Cannot verify the echo: byte ${at + i} differs from what was sent`);
    }
    this.#received = at + n;
    if (this.#received === message.length) {
      const now = monotonicMs();
      this.answered(now);
      this.#busy = false;
      if (this.#once) {
        this.ended = true;
        this.#transport!.close();
        return;
      }
      if (waiting === 0) queueMicrotask(TcpLoad.#sendNext);
      answered[waiting++] = this;
    }
  }

  /** The next requests of the connections answered during the events just handled. */
  static #sendNext = (): void => {
    // Answers come from the poller, not from a send: `waiting` is not expected to grow
    // meanwhile, and what did would be sent by this loop too.
    try {
      for (let i = 0; i < waiting; i++) {
        const connection = answered[i]!;
        answered[i] = null; // nothing of a run is kept past it
        try {
          connection.next(monotonicMs());
        } catch (error) {
          connection.#fail(
            `Cannot send the next message: ${error instanceof Error ? error.message : error}`,
          );
        }
      }
    } finally {
      waiting = 0;
    }
  };

  eofReceived(): void {
    if (this.state.stopping) return;
    this.#fail(
      this.#busy
        ? `Cannot read the echo: the server closed after ${this.#received} of ` +
          `${this.#message.length} bytes`
        : "Cannot send the next message: the server closed the connection between two " +
          "(is it an echo server that keeps connections open?)",
    );
  }

  pauseWriting(): void {
    this.#writingPaused = true;
  }

  resumeWriting(): void {
    this.#writingPaused = false;
    if (this.#busy) this.#writeMore();
  }

  connectionLost(error?: Error): void {
    if (error !== undefined && !this.ended && !this.state.stopping) {
      this.failed = true;
      this.state.errors.add(error);
    }
    this.end();
  }

  protected send(startedAt: number): void {
    if (this.state.stopping || this.ended) return;
    this.#busy = true;
    this.startCounting(startedAt);
    this.#written = 0;
    this.#received = 0;
    this.#writeMore();
  }

  #writeMore(): void {
    const message = this.#message;
    const size = message.length;
    const transport = this.#transport!;
    while (this.#written < size && !this.#writingPaused && !this.ended) {
      const from = this.#written;
      const to = Math.min(size, from + CHUNK);
      this.#written = to;
      transport.write(from === 0 && to === size ? message : message.subarray(from, to));
    }
  }

  #wrong(message: string): void {
    this.state.wrong++;
    this.#fail(message);
  }

  #fail(message: string): void {
    if (this.ended) return;
    this.ended = true;
    this.failed = true;
    this.state.errors.add(message);
    this.#transport?.abort();
  }

  /** The run is over: a request in flight is left unfinished. */
  protected stop(): void {
    this.state.unfinished += this.cancel(this.#busy);
    this.#busy = false;
    this.#transport?.abort();
  }
}
