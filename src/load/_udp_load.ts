/**
 * One UDP socket of a bench run, on the datagram protocol API: one datagram
 * in flight at a time, each numbered in its first 4 bytes (so a datagram
 * has at least {@linkcode UDP_MIN_SIZE} bytes), so every echo is matched to
 * what was sent. An echo that has not come within the loss timeout counts
 * as lost and the next is sent; one that comes after that counts as late
 * (and no longer lost), one seen twice as a duplicate, one that comes after
 * a later datagram's as reordered, and one that matches nothing sent (or
 * whose bytes differ) as a wrong answer: the answer, a wrong one, of the
 * datagram in flight, which is then neither lost nor answered, and the next
 * is sent.
 *
 * @module
 */

import type { DatagramProtocol, DatagramTransport } from "../udp/protocol.ts";
import { LoadConnection, type LoadState } from "./_state.ts";
import { sameBytes } from "./_pattern.ts";
import { monotonicMs } from "../libc/_clock.ts";

/** The fewest bytes a datagram of a run has: its sequence number. */
export const UDP_MIN_SIZE = 4;

/** How many of the last sequence numbers each socket remembers. */
const WINDOW = 4096;
const SENT = 1;
const ANSWERED = 2;
const LOST = 3;

/** A socket's closed or open loop; see the module documentation. */
export class UdpLoad extends LoadConnection implements DatagramProtocol {
  readonly #message: Uint8Array;
  readonly #view: DataView;
  readonly #lossTimeoutMs: number;
  /** The server, as `host:port`, for error messages. */
  readonly #remote: string;
  #transport: DatagramTransport | null = null;
  #sequence = 0;
  /** The highest sequence number answered. */
  #highest = 0;
  readonly #sequences = new Uint32Array(WINDOW);
  readonly #states = new Uint8Array(WINDOW);
  #busy = false;
  #sentAt = 0;

  constructor(
    state: LoadState,
    message: Uint8Array,
    index: number,
    lossTimeoutMs: number,
    remote: string,
  ) {
    super(state, index);
    this.#remote = remote;
    this.#message = message;
    this.#view = new DataView(message.buffer, message.byteOffset, message.byteLength);
    this.#lossTimeoutMs = lossTimeoutMs;
  }

  connectionMade(transport: DatagramTransport): void {
    this.#transport = transport;
    this.begin(transport);
  }

  datagramReceived(data: Uint8Array): void {
    const state = this.state;
    const message = this.#message;
    if (data.length !== message.length) return this.#wrong();
    // The message still holds the number of the datagram in flight: its echo matches whole.
    // Any other (late, duplicated, wrong) is compared past the number.
    if (!sameBytes(data, message, 0) && !sameBytes(data.subarray(4), message, 4)) {
      return this.#wrong();
    }
    const sequence = ((data[0] << 24) | (data[1] << 16) | (data[2] << 8) | data[3]) >>> 0;
    const slot = sequence % WINDOW;
    if (this.#sequences[slot] !== sequence || this.#states[slot] === 0) {
      if (sequence >= this.#sequence || this.#sequence - sequence >= 0x80000000) {
        return this.#wrong(); // never sent
      }
      // Older than the window remembers: it was answered (a duplicate) or lost (late).
      return this.#lateOrDuplicate();
    }
    const was = this.#states[slot];
    if (was === ANSWERED) {
      state.udp.duplicates++;
      return;
    }
    this.#states[slot] = ANSWERED;
    if (sequence < this.#highest) state.udp.reordered++;
    else this.#highest = sequence;
    if (was === LOST) {
      state.udp.late++;
      state.udp.lost--;
      return;
    }
    if (!this.#busy || sequence !== this.#sequence) return;
    const now = monotonicMs();
    this.answered(now);
    this.#busy = false;
    this.next(now);
  }

  errorReceived(error: Error): void {
    if (this.state.stopping) return;
    // Each socket names its own port: one message for all, so the report says it once.
    this.state.errors.add(
      error instanceof Deno.errors.ConnectionRefused
        ? `Cannot reach udp ${this.#remote}: nothing is listening (connection refused)`
        : error,
    );
  }

  connectionLost(error?: Error): void {
    if (error !== undefined && !this.ended && !this.state.stopping) {
      this.state.errors.add(error);
    }
    this.end();
  }

  /** Called often by the run: a datagram unanswered for the loss timeout is lost. */
  checkLoss(now: number): void {
    if (!this.#busy || now - this.#sentAt < this.#lossTimeoutMs) return;
    this.#states[this.#sequence % WINDOW] = LOST;
    this.state.udp.lost++;
    this.#busy = false;
    this.next(monotonicMs());
  }

  protected send(startedAt: number): void {
    if (this.state.stopping || this.ended) return;
    const sequence = this.#sequence = (this.#sequence + 1) >>> 0;
    this.#view.setUint32(0, sequence);
    const slot = sequence % WINDOW;
    this.#sequences[slot] = sequence;
    this.#states[slot] = SENT;
    this.#busy = true;
    this.startCounting(startedAt);
    // The loss timeout runs from the send. In closed loop `startedAt` was read just now; in
    // open loop it is when the datagram fell due, maybe long before.
    // Two stores, not one of a choice: the branch never taken reads a call's result, which
    // would make V8 box `startedAt` (allocate a number) to merge the two.
    if (this.state.schedule === null) this.#sentAt = startedAt;
    else this.#sentAt = monotonicMs();
    this.state.udp.sent++;
    // send() takes the bytes as they are now: the next number may be written at once.
    this.#transport!.send(this.#message);
  }

  /**
   * An echo that cannot be matched to its datagram any more: it counts as
   * late (and no longer lost) while some datagram is counted lost, else as
   * a duplicate.
   */
  #lateOrDuplicate(): void {
    const udp = this.state.udp;
    if (udp.lost > 0) {
      udp.lost--;
      udp.late++;
    } else {
      udp.duplicates++;
    }
  }

  /**
   * An answer that matches nothing sent: counted wrong. It is taken as the
   * answer of the datagram in flight, if any (a server that answers with
   * other bytes answers each datagram once, wrongly), which is then neither
   * lost nor answered, and the next is sent; its echo, should it come too,
   * counts as a duplicate.
   */
  #wrong(): void {
    const state = this.state;
    state.wrong++;
    state.errors.add("Cannot verify the echo: a datagram differs from every one sent");
    if (!this.#busy) return;
    this.#states[this.#sequence % WINDOW] = ANSWERED;
    this.#busy = false;
    this.next(monotonicMs());
  }

  protected stop(): void {
    this.state.unfinished += this.cancel(this.#busy);
    this.#busy = false;
    this.#transport?.abort();
  }
}
