/**
 * The echo behaviours, written once: a per-connection {@linkcode EchoSession}
 * drives any {@linkcode EchoSink}, so the protocol API and the stream API
 * share the same logic.
 *
 * @module
 */

import { indexOfBytes } from "../_bytes.ts";
import { type EchoInfoOptions, type ResolvedEchoInfo, resolveEchoInfo } from "./info.ts";
import { checkInteger } from "../_validate.ts";
import type { EchoFaults } from "./faults.ts";
import { type ResolvedEchoFaults, resolveEchoFaults } from "./_faults.ts";

const encoder = new TextEncoder();
/** Kept pieces up to this many bytes in all are sent back as one write. */
const JOIN_BELOW = 64 * 1024;
/** What a session that keeps nothing holds: shared, so most sessions need no array. */
const NOTHING_KEPT: Uint8Array[] = [];

/**
 * The default `prefix` of `prefix` mode, as in the tutorials: `GOT:`.
 *
 * @example
 * ```ts
 * import { DEFAULT_PREFIX } from "@x/echo/echo";
 * import { resolveEchoOptions } from "./behavior.ts";
 *
 * const { prefix } = resolveEchoOptions({ mode: "prefix" });
 * console.log(new TextDecoder().decode(prefix) === DEFAULT_PREFIX); // true
 * ```
 */
export const DEFAULT_PREFIX = "GOT:";

/**
 * The default terminator of `until` mode, as in the tutorials: `quit\n`.
 *
 * @example
 * ```ts
 * import { DEFAULT_TERMINATOR } from "@x/echo/echo";
 *
 * const request = "hello\n" + DEFAULT_TERMINATOR; // what an `until` server answers whole
 * ```
 */
export const DEFAULT_TERMINATOR = "quit\n";

/**
 * The default most bytes `until` mode keeps per connection: 8 MiB. When a
 * peer sends that much without the terminator, the server sends back the
 * bytes it kept and closes the connection.
 *
 * @example Allow larger requests
 * ```ts
 * import { DEFAULT_UNTIL_LIMIT, serveEcho } from "@x/echo/echo";
 *
 * const server = serveEcho({ port: 0, mode: "until", untilLimit: 4 * DEFAULT_UNTIL_LIMIT });
 * await server.shutdown();
 * ```
 */
export const DEFAULT_UNTIL_LIMIT = 8 * 1024 * 1024;

/**
 * The echo behaviours; see {@linkcode EchoOptions.mode}.
 *
 * @example
 * ```ts
 * import type { EchoMode } from "@x/echo";
 *
 * const mode: EchoMode = Deno.env.get("ECHO_MODE") === "once" ? "once" : "echo";
 * ```
 */
export type EchoMode = "echo" | "once" | "prefix" | "until" | "info";

/**
 * Every {@linkcode EchoMode}, for validation and help texts.
 *
 * @example Check a mode given as text
 * ```ts
 * import { ECHO_MODES, type EchoMode } from "@x/echo/echo";
 *
 * function isEchoMode(text: string): text is EchoMode {
 *   return (ECHO_MODES as readonly string[]).includes(text);
 * }
 * console.log(isEchoMode("prefix"), isEchoMode("shout")); // true false
 * ```
 */
export const ECHO_MODES: readonly EchoMode[] = ["echo", "once", "prefix", "until", "info"];

/**
 * What an echo server does with what it reads.
 *
 * @example Answer each read with `GOT:` in front
 * ```ts
 * import type { EchoOptions } from "@x/echo";
 *
 * const options: EchoOptions = { mode: "prefix", prefix: "GOT:" };
 * ```
 */
export interface EchoOptions {
  /**
   * - `"echo"` (default): send every byte back as it arrives, until the peer closes;
   * - `"once"`: answer the first read, then close;
   * - `"prefix"`: answer each read with `prefix` in front;
   * - `"until"`: keep everything until `until` arrives (or the peer stops
   *   sending), then send it all back and close;
   * - `"info"`: first answer with one JSON line saying what the server saw of
   *   the connection (see `EchoInfo`), then echo as `"echo"` does.
   *
   * When omitted, giving `prefix` means `"prefix"` and giving `until` means `"until"`.
   */
  mode?: EchoMode;
  /** The prefix of `"prefix"` mode (UTF-8 if a string). Default `"GOT:"`. */
  prefix?: string | Uint8Array;
  /** The terminator of `"until"` mode (UTF-8 if a string). Default `"quit\n"`. */
  until?: string | Uint8Array;
  /**
   * The most bytes `"until"` mode keeps per connection, terminator included.
   * A peer that sends that many without the terminator gets them back, and
   * the connection is closed (logged at info); what it sent beyond them is
   * dropped. So a peer cannot make the server keep more. Default 8 MiB.
   */
  untilLimit?: number;
  /**
   * Faults on purpose, to test what sits in front of the server: answers
   * held back (`delay`, `jitter`), sent slowly (`throttle`), connections
   * reset (`resetAfter`). See {@linkcode EchoFaults}. Default: none.
   */
  faults?: EchoFaults;
  /** What `"info"` mode reports of the server: its worker and host name. */
  info?: EchoInfoOptions;
}

/**
 * {@linkcode EchoOptions} checked and resolved, as
 * {@linkcode resolveEchoOptions} returns them.
 *
 * @example
 * ```ts
 * import { type ResolvedEchoOptions, resolveEchoOptions } from "./behavior.ts";
 *
 * const resolved: ResolvedEchoOptions = resolveEchoOptions({ mode: "until" });
 * console.log(resolved.until.length, resolved.untilLimit); // 5 8388608
 * ```
 */
export interface ResolvedEchoOptions {
  /** The mode in force. */
  mode: EchoMode;
  /** The prefix bytes (empty unless `mode` is `"prefix"`). */
  prefix: Uint8Array;
  /** The terminator bytes (empty unless `mode` is `"until"`). */
  until: Uint8Array;
  /** The most bytes `"until"` mode keeps. */
  untilLimit: number;
  /** The faults on purpose, or `null` when none is on. */
  faultsInForce: ResolvedEchoFaults | null;
  /** What `"info"` mode reports of the server; `null` in the other modes. */
  infoInForce: ResolvedEchoInfo | null;
}

/**
 * Checks echo options and fills in defaults. Done once per server, not per
 * connection.
 *
 * @example
 * ```ts
 * import { resolveEchoOptions } from "./behavior.ts";
 *
 * console.log(resolveEchoOptions({ prefix: "GOT:" }).mode); // "prefix"
 * ```
 *
 * @throws {RangeError} naming the bad value: an unknown mode, an empty terminator,
 * `prefix`/`until` given with a mode that does not use them, or a fault out of range.
 */
export function resolveEchoOptions(options: EchoOptions = {}): ResolvedEchoOptions {
  const { prefix, until, untilLimit = DEFAULT_UNTIL_LIMIT } = options;
  if (prefix !== undefined && until !== undefined) {
    throw new RangeError(
      "Cannot use both prefix and until: they are two modes; choose one, prefix mode or until mode",
    );
  }
  const mode = options.mode ??
    (prefix !== undefined ? "prefix" : until !== undefined ? "until" : "echo");
  if (!ECHO_MODES.includes(mode)) {
    throw new RangeError(
      `Cannot use echo mode ${JSON.stringify(mode)}: it must be one of ${ECHO_MODES.join(", ")}`,
    );
  }
  if (prefix !== undefined && mode !== "prefix") {
    throw new RangeError(
      `Cannot use prefix with mode ${JSON.stringify(mode)}: prefix is for mode "prefix" only; ` +
        `use mode "prefix" or drop the prefix`,
    );
  }
  if (until !== undefined && mode !== "until") {
    throw new RangeError(
      `Cannot use until with mode ${JSON.stringify(mode)}: until is for mode "until" only; ` +
        `use mode "until" or drop until`,
    );
  }
  checkInteger("untilLimit", untilLimit, 1, 2 ** 53 - 1);
  const bytes = (value: string | Uint8Array) =>
    typeof value === "string" ? encoder.encode(value) : value;
  const resolved: ResolvedEchoOptions = {
    mode,
    prefix: mode === "prefix" ? bytes(prefix ?? DEFAULT_PREFIX) : new Uint8Array(0),
    until: mode === "until" ? bytes(until ?? DEFAULT_TERMINATOR) : new Uint8Array(0),
    untilLimit,
    faultsInForce: resolveEchoFaults(options.faults),
    infoInForce: mode === "info" ? resolveEchoInfo(options.info) : null,
  };
  if (mode === "until" && resolved.until.length === 0) {
    throw new RangeError(
      'Cannot use until "": the terminator is empty; use at least one byte, such as "quit\\n"',
    );
  }
  return resolved;
}

/**
 * Where an echo session sends its answers: a `Transport` or a `StreamWriter`.
 *
 * @example
 * ```ts
 * import type { EchoSink } from "./behavior.ts";
 *
 * const sent: Uint8Array[] = [];
 * const sink: EchoSink = { write: (data) => void sent.push(data.slice()), close() {} };
 * ```
 */
export interface EchoSink {
  /** Queues bytes to send. */
  write(data: Uint8Array): void;
  /** Sends what is queued, then closes. */
  close(): unknown;
}

/**
 * What an {@linkcode EchoSession} tells the connection it runs on.
 *
 * @example Count what the session keeps, and hear when it gives up
 * ```ts
 * import type { EchoSessionHooks } from "./behavior.ts";
 *
 * let kept = 0;
 * const hooks: EchoSessionHooks = {
 *   charge: (delta) => void (kept += delta),
 *   limitReached: (bytes) => console.log(`no terminator in ${bytes} bytes`),
 * };
 * ```
 */
export interface EchoSessionHooks {
  /**
   * The memory the session keeps grew (`delta` > 0) or was let go of
   * (`delta` < 0), in bytes; a server counts it against its budget.
   */
  charge?(delta: number): void;
  /** `until` mode reached `untilLimit` (`bytes`) without the terminator; the session closes. */
  limitReached?(bytes: number): void;
}

/**
 * The echo behaviour of one connection: feed it what is read, and it writes
 * to the sink and closes it when its mode says so.
 *
 * @example
 * ```ts
 * import { EchoSession, resolveEchoOptions } from "./behavior.ts";
 *
 * const session = new EchoSession(resolveEchoOptions({ mode: "until", until: "\n" }));
 * const sink = { write: (d: Uint8Array) => console.log(d), close: () => console.log("closed") };
 * session.received(new TextEncoder().encode("hi"), sink);
 * session.received(new TextEncoder().encode("!\n"), sink); // writes "hi!\n", then closes
 * ```
 */
export class EchoSession {
  readonly #options: ResolvedEchoOptions;
  readonly #hooks: EchoSessionHooks | undefined;
  /** What `until` mode keeps: a copy of each read, in order (no regrowing, no slack). */
  #kept: Uint8Array[] = NOTHING_KEPT;
  /** Where a terminator split between two reads is looked for (made when first needed). */
  #seam: Uint8Array | null = null;
  #keptLength = 0;
  #done = false;

  /** Starts a session with options from {@linkcode resolveEchoOptions}. */
  constructor(options: ResolvedEchoOptions, hooks?: EchoSessionHooks) {
    this.#options = options;
    this.#hooks = hooks;
  }

  /** `true` once the session has closed its sink: feed it nothing more. */
  get done(): boolean {
    return this.#done;
  }

  /**
   * Handles one read. `data` may be a view that is reused after this call:
   * the session copies what it keeps.
   */
  received(data: Uint8Array, sink: EchoSink): void {
    if (this.#done) return;
    switch (this.#options.mode) {
      case "echo":
      case "info": // its line went first (see info.ts), then the echo
        sink.write(data);
        return;
      case "prefix":
        sink.write(this.#options.prefix);
        sink.write(data);
        return;
      case "once":
        sink.write(data);
        return this.#finish(sink);
      case "until":
        return this.#keep(data, sink);
    }
  }

  /** Handles end of input: sends back anything kept, then closes the sink. */
  ended(sink: EchoSink): void {
    if (this.#done) return;
    this.#flushKept(sink);
    this.#finish(sink);
  }

  /**
   * `until` mode: keeps what came, at most `untilLimit` bytes in all; once
   * the terminator is in, sends back everything up to and including it (not
   * what followed it in the same read) and closes.
   */
  #keep(data: Uint8Array, sink: EchoSink): void {
    const { untilLimit } = this.#options;
    const taken = Math.min(data.length, untilLimit - this.#keptLength);
    const end = this.#terminatorEnd(data, taken);
    if (end !== -1) {
      if (end > 0) this.#hold(data.slice(0, end));
      this.#keptLength += end;
      this.#flushKept(sink, this.#keptLength - end);
      return this.#finish(sink);
    }
    this.#hold(data.slice(0, taken));
    this.#keptLength += taken;
    this.#hooks?.charge?.(taken);
    if (this.#keptLength === untilLimit) {
      this.#hooks?.limitReached?.(untilLimit);
      this.#flushKept(sink, this.#keptLength);
      this.#finish(sink);
    }
  }

  /**
   * Where the terminator ends in the first `taken` bytes of `data` (an
   * index just past it; 0 or less when it began in what was kept before),
   * or -1 when it is not there yet.
   */
  #terminatorEnd(data: Uint8Array, taken: number): number {
    const { until } = this.#options;
    // Across the seam: the end of what was kept, then the start of this read.
    const tail = Math.min(until.length - 1, this.#keptLength);
    if (tail > 0) {
      const head = Math.min(until.length - 1, taken);
      const seam = (this.#seam ??= new Uint8Array(2 * (until.length - 1))).subarray(0, tail + head);
      let filled = tail;
      for (let i = this.#kept.length - 1; filled > 0; i--) {
        const chunk = this.#kept[i];
        const n = Math.min(filled, chunk.length);
        seam.set(chunk.subarray(chunk.length - n), filled - n);
        filled -= n;
      }
      seam.set(data.subarray(0, head), tail);
      const at = indexOfBytes(seam, until, 0, seam.length);
      if (at !== -1) return at + until.length - tail;
    }
    const at = indexOfBytes(data, until, 0, taken);
    return at === -1 ? -1 : at + until.length;
  }

  /**
   * Sends what is kept, and lets go of it; `charged` of it (its first
   * bytes) was counted. Pieces are joined into one write when small, and
   * written one by one when large (no second copy of a large request), each
   * let go of as it is written: a write counts the copy it keeps of what
   * the socket does not take at once (all of it on the deno backend), and
   * the kept bytes and their copies are never both counted past one piece.
   */
  #flushKept(sink: EchoSink, charged = this.#keptLength): void {
    const kept = this.#kept;
    const keptLength = this.#keptLength;
    this.#kept = NOTHING_KEPT;
    this.#keptLength = 0;
    if (kept.length > 1 && keptLength <= JOIN_BELOW) {
      const joined = new Uint8Array(keptLength);
      let offset = 0;
      for (const chunk of kept) {
        joined.set(chunk, offset);
        offset += chunk.length;
      }
      sink.write(joined);
      if (charged > 0) this.#hooks?.charge?.(-charged);
      return;
    }
    let left = charged;
    for (const chunk of kept) {
      sink.write(chunk);
      const written = Math.min(left, chunk.length);
      if (written === 0) continue;
      left -= written;
      this.#hooks?.charge?.(-written);
    }
  }

  /** Adds one piece to what is kept. */
  #hold(piece: Uint8Array): void {
    if (this.#kept === NOTHING_KEPT) this.#kept = [];
    this.#kept.push(piece);
  }

  #finish(sink: EchoSink): void {
    this.#done = true;
    sink.close();
  }
}
