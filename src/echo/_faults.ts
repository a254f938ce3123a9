/**
 * The workings of the faults on purpose (see `faults.ts`): their checks,
 * and {@linkcode FaultyEcho}, which stands between an {@linkcode EchoSession}
 * and its connection, once for the protocol and the stream API: it cuts
 * the input at `resetAfter`, holds each answer back for its delay, sends at
 * the throttle's pace, and resets the connection when it is told to.
 *
 * @module
 */

import { checkInteger } from "../_validate.ts";
import type { Transport } from "../core/protocol.ts";
import { chargeBuffered, resetConnection } from "../core/_transport.ts";
import type { EchoSession, EchoSink } from "./behavior.ts";
import type { EchoFaultCounters, EchoFaults, UdpEchoFaults } from "./faults.ts";
import { tcpEchoLogger } from "./_log.ts";
import { formatAddress } from "../_address.ts";
import { Alarm } from "../poll/_alarm.ts";

/** What holding one piece costs beside its bytes (the object and its slot), in bytes. */
const PIECE_COST = 64;

const MAX_MS = 2 ** 31 - 1;
/** The throttle's bucket is refilled for this many milliseconds at most: its burst. */
export const THROTTLE_TICK = 20;

/** {@linkcode EchoFaults} checked, with 0 for what is off. */
export interface ResolvedEchoFaults {
  delay: number;
  jitter: number;
  throttle: number;
  resetAfter: number;
}

/** {@linkcode UdpEchoFaults} checked, with 0 for what is off. */
export interface ResolvedUdpEchoFaults {
  delay: number;
  jitter: number;
  /** The share of datagrams dropped, from 0 to 1. */
  drop: number;
}

/** Checks the object and the delay and jitter both kinds of faults share. */
function checkDelay(
  faults: unknown,
  names: string,
): { delay: number; jitter: number } | null {
  if (faults === undefined) return null;
  if (typeof faults !== "object" || faults === null || Array.isArray(faults)) {
    throw new TypeError(
      `Cannot use faults ${JSON.stringify(faults)}: it must be an object such as { ${names} }`,
    );
  }
  const { delay = 0, jitter = 0 } = faults as { delay?: number; jitter?: number };
  checkInteger("faults.delay", delay, 0, MAX_MS);
  checkInteger("faults.jitter", jitter, 0, MAX_MS);
  if (jitter > 0 && delay === 0) {
    throw new RangeError(
      `Cannot use faults.jitter ${jitter} without faults.delay: jitter spreads the delay; ` +
        "add a delay or drop the jitter",
    );
  }
  return { delay, jitter };
}

/**
 * Checks TCP echo faults; `null` when none is on.
 *
 * @throws {TypeError} for faults that are not an object.
 * @throws {RangeError} naming the bad value.
 */
export function resolveEchoFaults(faults: EchoFaults | undefined): ResolvedEchoFaults | null {
  const timing = checkDelay(faults, "delay, jitter, throttle, resetAfter");
  if (timing === null) return null;
  const { throttle = 0, resetAfter = 0 } = faults!;
  if (faults!.throttle !== undefined) checkInteger("faults.throttle", throttle, 1, 2 ** 53 - 1);
  if (faults!.resetAfter !== undefined) {
    checkInteger("faults.resetAfter", resetAfter, 1, 2 ** 53 - 1);
  }
  if (timing.delay === 0 && throttle === 0 && resetAfter === 0) return null;
  return { ...timing, throttle, resetAfter };
}

/**
 * Checks UDP echo faults; `null` when none is on.
 *
 * @throws {TypeError} for faults that are not an object.
 * @throws {RangeError} naming the bad value.
 */
export function resolveUdpEchoFaults(
  faults: UdpEchoFaults | undefined,
): ResolvedUdpEchoFaults | null {
  const timing = checkDelay(faults, "delay, jitter, drop");
  if (timing === null) return null;
  const { drop = 0 } = faults!;
  if (typeof drop !== "number" || !(drop >= 0 && drop <= 100)) {
    throw new RangeError(
      `Cannot use faults.drop ${JSON.stringify(drop) ?? String(drop)}: ` +
        "it must be a percentage from 0 to 100",
    );
  }
  if (timing.delay === 0 && drop === 0) return null;
  return { ...timing, drop: drop / 100 };
}

/**
 * When an answer made now goes out: `delay`, spread by `jitter` (uniform,
 * at least 0), never before `after` (the answer before it), in
 * `performance.now()` milliseconds.
 */
export function dueTime(delay: number, jitter: number, after: number): number {
  const spread = jitter === 0 ? delay : Math.max(0, delay + (2 * Math.random() - 1) * jitter);
  return Math.max(after, performance.now() + spread);
}

/** Fresh TCP fault counters. */
export function newFaultCounters(): EchoFaultCounters {
  return { delayed: 0, throttled: 0, resets: 0 };
}

/** What {@linkcode FaultyEcho} asks of the API it runs under. */
export interface FaultHooks {
  /** Stop reading: the connection holds more than it may, or it reached `resetAfter`. */
  pause(): void;
  /** Read again. */
  resume(): void;
  /**
   * Resolves once the transport's write buffer, past its high water mark,
   * drained to its low one; rejects or resolves once the connection is lost.
   */
  drained(): Promise<void>;
}

const DATA = 0;
const CLOSE = 1;
const RESET = 2;

/** One piece of the way out: an answer's bytes, or the close or reset after them. */
interface Held {
  kind: typeof DATA | typeof CLOSE | typeof RESET;
  /** A copy of the answer (empty for a close or reset). */
  data: Uint8Array;
  /** When it may go, in `performance.now()` milliseconds (0: now). */
  due: number;
}

const NOTHING = new Uint8Array(0);
let warnedNoReset = false;

/** See the module documentation. One per connection. */
export class FaultyEcho implements EchoSink {
  readonly #session: EchoSession;
  readonly #faults: ResolvedEchoFaults;
  readonly #counters: EchoFaultCounters;
  readonly #transport: Transport;
  readonly #hooks: FaultHooks;
  readonly #high: number;
  readonly #low: number;
  readonly #burst: number;
  readonly #held: Held[] = [];
  #head = 0;
  /** Bytes of the head piece already sent (the throttle sends pieces in parts). */
  #offset = 0;
  /** Bytes held, not yet handed to the transport. */
  #bytes = 0;
  /** The due time of the answer being made (-1: a new read begins). */
  #due = -1;
  #lastDue = 0;
  #tokens: number;
  #refilled: number;
  #received = 0;
  /** `resetAfter` was reached: nothing more is read. */
  #cut = false;
  #paused = false;
  #pumping = false;
  #waiting = false;
  /** Wakes the pump when the next piece is due (on time under load: see `Alarm`). */
  readonly #alarm = new Alarm(() => this.#pump());
  #stopped = false;
  readonly #finished = Promise.withResolvers<void>();
  #room: PromiseWithResolvers<void> | null = null;
  readonly #onDrained = () => {
    this.#waiting = false;
    this.#pump();
  };
  readonly #onLost = () => this.stop();

  /** Runs `session` on `transport` with `faults`, counting in `counters`. */
  constructor(
    session: EchoSession,
    faults: ResolvedEchoFaults,
    counters: EchoFaultCounters,
    transport: Transport,
    hooks: FaultHooks,
  ) {
    this.#session = session;
    this.#faults = faults;
    this.#counters = counters;
    this.#transport = transport;
    this.#hooks = hooks;
    const { high, low } = transport.getWriteBufferLimits();
    this.#high = high;
    this.#low = low;
    this.#burst = Math.max(1, (faults.throttle * THROTTLE_TICK) / 1000);
    this.#tokens = this.#burst;
    this.#refilled = performance.now();
  }

  /** Nothing more is read or answered: the reset is coming, or the connection ended. */
  get cut(): boolean {
    return this.#cut || this.#stopped;
  }

  /** More is held than the connection may hold: read no more until {@linkcode FaultyEcho.room}. */
  get full(): boolean {
    return this.#paused;
  }

  /** Resolves once reading may go on (or the connection ended). */
  room(): Promise<void> {
    if (!this.#paused || this.#stopped) return Promise.resolve();
    return (this.#room ??= Promise.withResolvers<void>()).promise;
  }

  /** Resolves once everything held went out and the close or reset followed, or on `stop`. */
  get finished(): Promise<void> {
    return this.#finished.promise;
  }

  /** One read: cut at `resetAfter`, then answered as the session says, through the faults. */
  received(data: Uint8Array): void {
    if (this.#cut || this.#stopped) return;
    let piece = data;
    const { resetAfter } = this.#faults;
    if (resetAfter > 0) {
      const left = resetAfter - this.#received;
      if (data.length >= left) {
        piece = data.subarray(0, left);
        this.#cut = true;
      }
      this.#received += piece.length;
    }
    this.#due = -1;
    if (piece.length > 0) this.#session.received(piece, this);
    if (!this.#cut) return;
    if (!this.#session.done) this.#push(RESET, NOTHING);
    this.#pauseReading();
  }

  /** End of input: the session sends back what it kept, then closes, through the faults. */
  ended(): void {
    if (this.#cut || this.#stopped) return;
    this.#due = -1;
    this.#session.ended(this);
  }

  /** From the session: an answer, held (a copy) until its time. */
  write(data: Uint8Array): void {
    if (data.length === 0 || this.#stopped) return;
    this.#push(DATA, data.slice());
    // A piece costs its bytes and its entry: a peer sending one byte per segment holds pieces,
    // not bytes, and they are counted (against the pause and the budget) as such.
    const cost = data.length + PIECE_COST;
    this.#bytes += cost;
    chargeBuffered(this.#transport, cost);
    if (this.#bytes > this.#high) this.#pauseReading();
    this.#pump();
  }

  /** From the session: close once what is held went out. */
  close(): void {
    if (this.#stopped) return;
    this.#cut = true; // the session is done: it reads no more
    this.#push(CLOSE, NOTHING);
  }

  /** The connection is lost: drop what is held, end. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#alarm.clear();
    this.#held.length = 0;
    this.#head = 0;
    if (this.#bytes > 0) chargeBuffered(this.#transport, -this.#bytes);
    this.#bytes = 0;
    this.#finished.resolve();
    this.#room?.resolve();
    this.#room = null;
  }

  #push(kind: Held["kind"], data: Uint8Array): void {
    let due = 0;
    const { delay, jitter } = this.#faults;
    if (delay > 0) {
      if (kind !== DATA) {
        due = this.#lastDue; // after what is held, no later
      } else {
        if (this.#due < 0) {
          this.#due = this.#lastDue = dueTime(delay, jitter, this.#lastDue);
          this.#counters.delayed++;
        }
        due = this.#due;
      }
    }
    const held = this.#held;
    if (this.#head > 1024 && this.#head * 2 > held.length) {
      held.splice(0, this.#head); // what went out: no array that only grows
      this.#head = 0;
    }
    held.push({ kind, data, due });
    if (kind !== DATA) this.#pump();
  }

  #pauseReading(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#hooks.pause();
  }

  /** Sends what is due, as the throttle and the transport's buffer allow; then waits for more. */
  #pump(): void {
    if (this.#pumping || this.#waiting || this.#stopped || this.#alarm.set) return;
    this.#pumping = true;
    try {
      this.#send();
    } finally {
      this.#pumping = false;
    }
  }

  #send(): void {
    const held = this.#held;
    const transport = this.#transport;
    const { throttle } = this.#faults;
    while (this.#head < held.length) {
      const piece = held[this.#head];
      if (piece.due > 0) {
        const wait = piece.due - performance.now();
        if (wait > 0) return this.#wake(wait);
        piece.due = 0;
      }
      if (piece.kind !== DATA) return this.#end(piece.kind);
      if (transport.isClosing()) return this.stop();
      if (transport.getWriteBufferSize() > this.#high) {
        this.#waiting = true;
        this.#hooks.drained().then(this.#onDrained, this.#onLost);
        return;
      }
      const { data } = piece;
      let n = data.length - this.#offset;
      if (throttle > 0) {
        const now = performance.now();
        this.#tokens = Math.min(
          this.#burst,
          this.#tokens + ((now - this.#refilled) * throttle) / 1000,
        );
        this.#refilled = now;
        if (this.#tokens < Math.min(n, this.#burst)) {
          return this.#wake(((Math.min(n, this.#burst) - this.#tokens) * 1000) / throttle);
        }
        n = Math.min(n, Math.floor(this.#tokens));
        this.#tokens -= n;
        this.#counters.throttled += n;
      }
      const chunk = n === data.length ? data : data.subarray(this.#offset, this.#offset + n);
      this.#offset += n;
      let freed = n;
      if (this.#offset === data.length) {
        this.#offset = 0;
        held[this.#head++] = undefined!;
        freed += PIECE_COST; // the piece is gone
      }
      this.#bytes -= freed;
      chargeBuffered(transport, -freed);
      transport.write(chunk);
      if (this.#stopped) return;
      if (this.#paused && !this.#cut && this.#bytes <= this.#low) {
        this.#paused = false;
        this.#room?.resolve();
        this.#room = null;
        this.#hooks.resume();
      }
    }
    held.length = 0;
    this.#head = 0;
  }

  #wake(ms: number): void {
    this.#alarm.setIn(ms);
  }

  /** What is held before the close or the reset went out: do it, and end. */
  #end(kind: typeof CLOSE | typeof RESET): void {
    const transport = this.#transport;
    this.stop();
    if (transport.isClosing()) return;
    if (kind === CLOSE) return transport.close();
    const peer = transport.getExtraInfo("peername");
    // Counted only when it is a reset: one that could not be done closes with FIN.
    if (resetConnection(transport)) {
      this.#counters.resets++;
    } else if (!warnedNoReset) {
      warnedNoReset = true;
      tcpEchoLogger.warning(
        "Cannot reset {peer} after {bytes} bytes: {why}; closing with FIN instead " +
          "(this is said once)",
        {
          peer: formatAddress(peer),
          bytes: this.#faults.resetAfter,
          why: "path" in peer
            ? "a Unix socket has no reset"
            : "SO_LINGER cannot be set without FFI (run with --allow-ffi, and --allow-read " +
              "on the deno backend)",
        },
      );
    }
  }
}
