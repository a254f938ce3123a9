/**
 * The UDP echo server: each datagram is answered with one datagram, the
 * same bytes (`echo`) or the same bytes after a prefix (`prefix`). The
 * stream modes (`once`, `until`) have no meaning for datagrams, which stand
 * alone.
 *
 * @module
 */

import { countDropped, type CountsTooLarge, countTooLarge } from "../udp/_drops.ts";
import { sendInPlace, type SendsInPlace } from "../udp/_send_in_place.ts";
import type { DatagramProtocol, DatagramTransport } from "../udp/protocol.ts";
import {
  serveUdp,
  type UdpServer,
  type UdpServerCounters,
  type UdpServerOptions,
} from "../udp/server.ts";
import { MAX_DATAGRAM_SIZE_IPV6 } from "../udp/socket.ts";
import { udpEchoLogger } from "./_log.ts";
import { formatAddress } from "../_address.ts";
import { resolveEchoOptions } from "./behavior.ts";
import {
  datagramInfoLine,
  type EchoInfoOptions,
  type ResolvedEchoInfo,
  resolveEchoInfo,
} from "./info.ts";
import type { UdpEchoFaultCounters, UdpEchoFaults } from "./faults.ts";
import { dueTime, type ResolvedUdpEchoFaults, resolveUdpEchoFaults } from "./_faults.ts";
import { moreCounters, type WithMoreCounters } from "../_more_counters.ts";
import { lastRead } from "../core/_last_read.ts";
import { Alarm } from "../poll/_alarm.ts";

/** The most bytes of answers `faults.delay` holds; past it, datagrams are dropped and counted. */
const DELAYED_LIMIT = 4 * 1024 * 1024;
/** What holding one answer costs beside its bytes (its slots in the arrays, the address). */
const HELD_ENTRY_COST = 128;

/** Whether `hostname` is a loopback address, which only this host can send from. */
function isLoopback(hostname: string): boolean {
  return hostname.startsWith("127.") || hostname === "::1" || hostname.startsWith("::ffff:127.");
}

/**
 * The echo modes a UDP echo server has.
 *
 * @example
 * ```ts
 * import type { UdpEchoMode } from "@x/echo/echo";
 *
 * const mode: UdpEchoMode = "prefix";
 * ```
 */
export type UdpEchoMode = "echo" | "prefix" | "info";

/**
 * Every {@linkcode UdpEchoMode}, for validation and help texts.
 *
 * @example
 * ```ts
 * import { UDP_ECHO_MODES } from "@x/echo/echo";
 *
 * console.log(`modes: ${UDP_ECHO_MODES.join(", ")}`);
 * ```
 */
export const UDP_ECHO_MODES: readonly UdpEchoMode[] = ["echo", "prefix", "info"];

/**
 * What a UDP echo server does with each datagram.
 *
 * @example
 * ```ts
 * import type { UdpEchoOptions } from "@x/echo/echo";
 *
 * const options: UdpEchoOptions = { mode: "prefix", prefix: "GOT:" };
 * ```
 */
export interface UdpEchoOptions {
  /**
   * `"echo"` (default): answer each datagram with its bytes; `"prefix"`:
   * with `prefix` in front; `"info"`: with one JSON line saying what the
   * server saw of it instead (see `EchoInfo`). Giving `prefix` alone means
   * `"prefix"`.
   */
  mode?: UdpEchoMode;
  /** The prefix of `"prefix"` mode (UTF-8 if a string). Default `"GOT:"`. */
  prefix?: string | Uint8Array;
  /**
   * Faults on purpose: answers held back (`delay`, `jitter`) and datagrams
   * left unanswered (`drop`). See {@linkcode UdpEchoFaults}. Default: none.
   */
  faults?: UdpEchoFaults;
  /** What `"info"` mode reports of the server: its worker and host name. */
  info?: EchoInfoOptions;
}

/**
 * Checks UDP echo options and returns the prefix to put in front of each
 * answer (empty in `echo` mode).
 *
 * @example
 * ```ts
 * import { resolveUdpEchoPrefix } from "./datagram.ts";
 *
 * console.log(resolveUdpEchoPrefix({ prefix: "GOT:" }).length); // 4
 * ```
 *
 * @throws {RangeError} for another mode (such as `once` or `until`), naming the modes that apply,
 * or a fault out of range.
 */
export function resolveUdpEchoPrefix(options: UdpEchoOptions = {}): Uint8Array {
  const { mode } = options;
  if (mode !== undefined && !UDP_ECHO_MODES.includes(mode)) {
    const stream = (mode as string) === "once" || (mode as string) === "until";
    throw new RangeError(
      `Cannot use echo mode ${JSON.stringify(mode)} for UDP: ` +
        (stream
          ? "a datagram stands alone, so there is no stream to answer once or to wait on; " +
            'use "echo", "prefix" or "info"'
          : 'it must be "echo", "prefix" or "info"'),
    );
  }
  resolveUdpEchoFaults(options.faults);
  return resolveEchoOptions({ mode: options.mode, prefix: options.prefix }).prefix;
}

/**
 * The UDP echo protocol: answers each datagram to its source. In `prefix`
 * mode the answer is built in one buffer reused while no answer is queued,
 * so a steady echo allocates nothing per datagram. An answer that would
 * pass the UDP maximum with its prefix is not sent (logged at debug).
 *
 * @example
 * ```ts
 * import { EchoDatagramProtocol } from "@x/echo/echo";
 * import { serveUdp } from "@x/echo";
 *
 * const server = await serveUdp({ port: 0 }, () => new EchoDatagramProtocol());
 * await server.shutdown();
 * ```
 */
export class EchoDatagramProtocol implements DatagramProtocol {
  readonly #prefix: Uint8Array;
  #transport: DatagramTransport | null = null;
  /** The transport, when it can send a datagram's bytes back without a copy. */
  #inPlace: SendsInPlace | null = null;
  /**
   * This very class, not a subclass: only then is it known that nothing
   * changes a datagram after the echo's call (a subclass's
   * `datagramReceived` may, after `super.datagramReceived`).
   */
  readonly #final: boolean;
  #scratch: Uint8Array | null = null;
  /** The faults, held answers and counters; `null` without faults. */
  readonly #faults: DatagramFaults | null;
  /** What `info` mode reports; `null` in the other modes. */
  readonly #info: ResolvedEchoInfo | null;

  /**
   * Makes the protocol: in `prefix` mode, `options.prefix` goes before each answer.
   *
   * @throws {RangeError} for invalid options (see {@linkcode serveUdpEcho}).
   */
  constructor(options: UdpEchoOptions = {}) {
    this.#final = new.target === EchoDatagramProtocol;
    this.#prefix = resolveUdpEchoPrefix(options);
    this.#info = options.mode === "info" ? resolveEchoInfo(options.info) : null;
    const faults = resolveUdpEchoFaults(options.faults);
    this.#faults = faults === null ? null : new DatagramFaults(faults);
  }

  /** What the faults did (all 0 without them). */
  get faultCounters(): UdpEchoFaultCounters {
    return { delayed: this.#faults?.delayed ?? 0 };
  }

  /** Keeps the transport to answer on. */
  connectionMade(transport: DatagramTransport): void {
    this.#transport = transport;
    this.#inPlace = this.#final && sendInPlace in transport
      ? transport as unknown as SendsInPlace
      : null;
    this.#faults?.attach(transport);
  }

  /**
   * The server stops (see `core/_last_read.ts`): the answers the faults
   * hold back still go out, each when due; then the transport is closed.
   * `false` when none are held.
   */
  [lastRead](): boolean {
    const transport = this.#transport;
    return this.#faults?.finish(() => transport?.close()) ?? false;
  }

  /** Drops the answers the faults still hold. */
  connectionLost(): void {
    this.#faults?.stop();
  }

  /** Answers `data` to `from`. */
  datagramReceived(data: Uint8Array, from: Deno.NetAddr): void {
    const transport = this.#transport!;
    if (this.#info !== null) {
      // info mode: the line is the answer (its own buffer, which the transport may keep).
      const server = transport.getExtraInfo("sockname");
      const line = datagramInfoLine(from, server, data.length, this.#info);
      // Never more bytes out than in where others can reach us: a spoofed source would
      // make the server an amplifier aimed at it. Loopback has no such sources.
      if (line.length > data.length && !isLoopback(server.hostname)) {
        return (transport as Partial<CountsTooLarge>)[countDropped]?.("amplification");
      }
      data = line;
    }
    const prefix = this.#prefix;
    const faults = this.#faults;
    if (faults !== null) {
      return faults.answer(prefix, data, from, (size) => this.#tooLarge(size, from));
    }
    if (prefix.length === 0) {
      // The datagram's own bytes, which this protocol never changes: sent without a copy
      // where the transport can (the info line is a buffer of its own, sent as any).
      const inPlace = this.#inPlace;
      return inPlace === null || this.#info !== null
        ? transport.send(data, from)
        : inPlace[sendInPlace](this, data, from);
    }
    const size = prefix.length + data.length;
    if (size > MAX_DATAGRAM_SIZE_IPV6) return this.#tooLarge(size, from);
    // The scratch buffer is free once nothing is queued: every answer in it is non-empty.
    let answer: Uint8Array;
    if (transport.getWriteBufferSize() === 0) {
      answer = (this.#scratch ??= this.#makeScratch()).subarray(0, size);
    } else {
      answer = new Uint8Array(size);
      answer.set(prefix);
    }
    answer.set(data, prefix.length);
    try {
      transport.send(answer, from);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      this.#tooLarge(size, from); // Over IPv4's smaller maximum.
    }
  }

  #makeScratch(): Uint8Array {
    const scratch = new Uint8Array(MAX_DATAGRAM_SIZE_IPV6);
    scratch.set(this.#prefix);
    return scratch;
  }

  #tooLarge(size: number, from: Deno.NetAddr): void {
    (this.#transport as Partial<CountsTooLarge>)[countTooLarge]?.();
    udpEchoLogger.debug(
      "Not answering {source}: the answer with its prefix would be {size} bytes, more than UDP carries",
      { source: formatAddress(from), size },
    );
  }
}

/**
 * The UDP faults of one server: datagrams dropped at random, answers held
 * back (copies, at most {@linkcode DELAYED_LIMIT} bytes) and sent in the
 * order they came, by one timer at a time.
 */
class DatagramFaults {
  readonly #faults: ResolvedUdpEchoFaults;
  #transport: DatagramTransport | null = null;
  #counts: Partial<CountsTooLarge> = {};
  readonly #answers: Uint8Array[] = [];
  readonly #targets: Deno.NetAddr[] = [];
  readonly #due: number[] = [];
  #head = 0;
  #bytes = 0;
  #lastDue = 0;
  /** Sends what is due when the next answer is (on time under load: see `Alarm`). */
  readonly #alarm = new Alarm(() => this.#sendDue());
  #stopped = false;
  /** What `finish` asked to be called once nothing is held. */
  #finished: (() => void) | null = null;
  delayed = 0;

  constructor(faults: ResolvedUdpEchoFaults) {
    this.#faults = faults;
  }

  attach(transport: DatagramTransport): void {
    this.#transport = transport;
    this.#counts = transport as Partial<CountsTooLarge>;
  }

  /** Answers `data` (after `prefix`) to `from`, or not, as the faults say. */
  answer(
    prefix: Uint8Array,
    data: Uint8Array,
    from: Deno.NetAddr,
    tooLarge: (size: number) => void,
  ): void {
    const { drop, delay, jitter } = this.#faults;
    if (drop > 0 && Math.random() < drop) return this.#counts[countDropped]?.("injected");
    const size = prefix.length + data.length;
    if (size > MAX_DATAGRAM_SIZE_IPV6) return tooLarge(size);
    const transport = this.#transport!;
    if (delay === 0) {
      if (prefix.length === 0) return transport.send(data, from);
      return this.#send(joined(prefix, data), from, tooLarge);
    }
    if (this.#stopped) return;
    // Each held answer costs its bytes and its entry (the arrays' slots, the address): an
    // empty datagram is not free to hold.
    const cost = size + HELD_ENTRY_COST;
    if (this.#bytes + cost > DELAYED_LIMIT) return this.#counts[countDropped]?.("overflow");
    this.#answers.push(joined(prefix, data));
    this.#targets.push(from);
    this.#due.push(this.#lastDue = dueTime(delay, jitter, this.#lastDue));
    this.#bytes += cost;
    this.delayed++;
    if (!this.#alarm.set) this.#sendDue();
  }

  /**
   * No more datagrams come: `done` is called once every held answer went
   * out. `false` (and `done` never called) when none is held.
   */
  finish(done: () => void): boolean {
    if (this.#stopped || this.#head === this.#answers.length) return false;
    this.#finished = done;
    return true;
  }

  /** The socket is closed: what is held is dropped. */
  stop(): void {
    this.#stopped = true;
    this.#finished = null;
    this.#alarm.clear();
    this.#answers.length = this.#targets.length = this.#due.length = 0;
    this.#head = this.#bytes = 0;
  }

  #sendDue(): void {
    const answers = this.#answers;
    const now = performance.now();
    while (this.#head < answers.length && !this.#stopped) {
      const i = this.#head;
      if (this.#due[i] > now) {
        this.#alarm.setIn(this.#due[i] - now);
        break;
      }
      const answer = answers[i];
      this.#head++;
      this.#bytes -= answer.length + HELD_ENTRY_COST;
      this.#send(answer, this.#targets[i], () => this.#counts[countTooLarge]?.());
    }
    if (this.#head === answers.length) {
      const finished = this.#finished;
      this.#finished = null;
      finished?.();
      answers.length =
        this.#targets.length =
        this.#due.length =
        this.#head =
          0;
    } else if (this.#head > 1024 && this.#head * 2 > answers.length) {
      answers.splice(0, this.#head);
      this.#targets.splice(0, this.#head);
      this.#due.splice(0, this.#head);
      this.#head = 0;
    }
  }

  #send(answer: Uint8Array, to: Deno.NetAddr, tooLarge: (size: number) => void): void {
    const transport = this.#transport!;
    if (transport.isClosing()) return;
    try {
      transport.send(answer, to);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      tooLarge(answer.length); // Over IPv4's smaller maximum.
    }
  }
}

/** `prefix` then `data`, in a buffer of their own. */
function joined(prefix: Uint8Array, data: Uint8Array): Uint8Array {
  if (prefix.length === 0) return data.slice();
  const answer = new Uint8Array(prefix.length + data.length);
  answer.set(prefix);
  answer.set(data, prefix.length);
  return answer;
}

/**
 * Options of {@linkcode serveUdpEcho}: the server's, and the echo mode.
 *
 * @example
 * ```ts
 * import type { UdpEchoServerOptions } from "@x/echo";
 *
 * const options: UdpEchoServerOptions = { port: 8888, mode: "prefix", prefix: "GOT:" };
 * ```
 */
export interface UdpEchoServerOptions extends UdpServerOptions, UdpEchoOptions {}

/**
 * What a UDP echo server has done so far: the UDP server's counters, and
 * what its faults did when they are on (datagrams `drop` left unanswered
 * are in `drops.injected`).
 *
 * @example
 * ```ts
 * import type { UdpEchoServerCounters } from "@x/echo/echo";
 *
 * const report = (c: UdpEchoServerCounters) => `${c.drops.injected} dropped on purpose`;
 * ```
 */
export interface UdpEchoServerCounters extends UdpServerCounters {
  /** What the faults did; present when {@linkcode UdpEchoOptions.faults} are on. */
  faults?: UdpEchoFaultCounters;
}

/**
 * A running UDP echo server, as {@linkcode serveUdpEcho} returns it: a
 * {@linkcode UdpServer} whose counters say what its faults did.
 *
 * @example
 * ```ts
 * import { serveUdpEcho, type UdpEchoServer } from "@x/echo/echo";
 *
 * const server: UdpEchoServer = await serveUdpEcho({ port: 0, faults: { drop: 50 } });
 * console.log(server.counters.drops.injected); // 0
 * await server.shutdown();
 * ```
 */
export interface UdpEchoServer extends UdpServer {
  /** A snapshot of the counters. */
  readonly counters: UdpEchoServerCounters;
}

/**
 * Starts a UDP echo server, bound to 127.0.0.1 unless `hostname` says
 * otherwise, behind the reflection guard (see {@linkcode serveUdp}).
 *
 * @example Echo on port 8888 until Ctrl-C
 * ```ts ignore
 * import { serveUdpEcho } from "@x/echo";
 *
 * const server = await serveUdpEcho({ port: 8888 });
 * Deno.addSignalListener("SIGINT", () => server.shutdown());
 * await server.finished;
 * ```
 *
 * @throws {RangeError} for an invalid option (such as mode `until`, or a fault out of range),
 * before any socket is opened.
 * @throws {Deno.errors.AddrInUse} when the port is taken.
 */
export function serveUdpEcho(options: UdpEchoServerOptions = {}): Promise<UdpEchoServer> {
  let faults: ResolvedUdpEchoFaults | null;
  try {
    resolveUdpEchoPrefix(options); // checked before any socket is opened
    faults = resolveUdpEchoFaults(options.faults);
  } catch (error) {
    return Promise.reject(error);
  }
  if (faults === null) return serveUdp(options, () => new EchoDatagramProtocol(options));
  let protocol: EchoDatagramProtocol | null = null;
  const counting: UdpEchoServerOptions & WithMoreCounters = {
    ...options,
    [moreCounters]: () => ({ faults: protocol?.faultCounters ?? { delayed: 0 } }),
  };
  return serveUdp(counting, () => protocol = new EchoDatagramProtocol(options));
}
