/**
 * Reflection safety for UDP servers. A UDP echo service answers whoever the
 * source address claims to be, so a forged source turns it into a weapon:
 * two echo services aimed at each other loop forever (the echo/chargen loop
 * of CERT CA-1996-01), and a forged victim address gets the answers. The
 * guard drops, before the protocol sees them, datagrams from the classic
 * loop ports, from this host's own port, and past an optional per-source
 * rate.
 *
 * @module
 */

import { checkInteger } from "../_validate.ts";
import { formatAddress } from "../_address.ts";
import { udpLogger } from "./_log.ts";

/**
 * Source ports a UDP server never answers: 0 (not a real port), and the
 * services that answer anything: echo (7), daytime (13), qotd (17),
 * chargen (19) and time (37). Answering them starts a loop.
 *
 * @example
 * ```ts
 * import { FORBIDDEN_SOURCE_PORTS } from "@x/echo/udp";
 *
 * console.log(FORBIDDEN_SOURCE_PORTS.includes(19)); // true: chargen
 * ```
 */
export const FORBIDDEN_SOURCE_PORTS: readonly number[] = [0, 7, 13, 17, 19, 37];

/**
 * A per-source rate limit: each source host may send `perSecond` datagrams
 * a second on average, in bursts of up to `burst`.
 *
 * @example
 * ```ts
 * import type { RateLimit } from "@x/echo/udp";
 *
 * const limit: RateLimit = { perSecond: 100, burst: 200 };
 * ```
 */
export interface RateLimit {
  /** Datagrams per second each source host may send, on average (at least 1). */
  perSecond: number;
  /** Datagrams a quiet source may send at once. Default `perSecond`. */
  burst?: number;
}

/**
 * Datagrams a UDP server dropped instead of answering, by reason.
 *
 * @example
 * ```ts
 * import type { DropCounts } from "@x/echo/udp";
 *
 * const total = (d: DropCounts) =>
 *   d.forbiddenPort + d.ownAddress + d.rateLimited + d.overflow + d.tooLarge + d.injected +
 *   d.amplification;
 * ```
 */
export interface DropCounts {
  /** From a source port in {@linkcode FORBIDDEN_SOURCE_PORTS}. */
  forbiddenPort: number;
  /** From the server's own port on one of this host's addresses. */
  ownAddress: number;
  /** Past the per-source rate limit. */
  rateLimited: number;
  /**
   * Arrived faster than they could be handled and overflowed a queue: the
   * `node:dgram` socket's receive queue, or the `epoll` socket's send queue
   * (an answer the kernel had no room for, past its bound).
   */
  overflow: number;
  /**
   * Answers not sent because they would be larger than UDP carries: the echo
   * of a datagram near the maximum with the `prefix` mode's prefix in front.
   */
  tooLarge: number;
  /** Left unanswered on purpose: the echo's `faults.drop`. */
  injected: number;
  /**
   * Not answered because the answer would be larger than the datagram, on
   * an address other hosts can reach: `info` mode's JSON line to a short
   * datagram, which would make the server an amplifier for reflected
   * traffic.
   */
  amplification: number;
}

/** Checks a rate limit up front, naming a bad value. */
export function validateRateLimit(rateLimit: RateLimit | undefined): void {
  if (rateLimit === undefined) return;
  if (rateLimit === null || typeof rateLimit !== "object") {
    throw new TypeError(
      `Cannot use rateLimit ${JSON.stringify(rateLimit)}: it must be { perSecond, burst? }`,
    );
  }
  checkInteger("rateLimit.perSecond", rateLimit.perSecond, 1, 1_000_000_000);
  if (rateLimit.burst !== undefined) {
    checkInteger("rateLimit.burst", rateLimit.burst, 1, 1_000_000_000);
  }
}

/** Sources tracked by the rate limit at most; past this, new sources share one bucket. */
const MAX_TRACKED_SOURCES = 65_536;

const forbidden = new Uint8Array(38);
for (const port of FORBIDDEN_SOURCE_PORTS) forbidden[port] = 1;

/** A token bucket: `tokens` left at time `time` (ms). */
interface Bucket {
  tokens: number;
  time: number;
}

/**
 * Decides which datagrams a server answers; see the module documentation.
 * {@linkcode ReflectionGuard.accept} runs once per datagram: a table lookup
 * and a compare, plus a map lookup when a rate limit is set.
 */
export class ReflectionGuard {
  /** What was dropped, by reason (the server fills in `overflow` and `tooLarge`). */
  readonly drops: Omit<DropCounts, "overflow" | "tooLarge" | "injected" | "amplification"> = {
    forbiddenPort: 0,
    ownAddress: 0,
    rateLimited: 0,
  };
  readonly #port: number;
  readonly #hostname: string;
  readonly #perMs: number;
  readonly #burst: number;
  readonly #buckets: Map<string, Bucket> | null;
  readonly #overflow: Bucket;
  readonly #debug: boolean;
  readonly #reflection: boolean;
  #hostAddresses: Set<string> | null = null;
  #lastSweep = -Infinity;

  /**
   * Guards a server bound to `own`: against reflection unless `reflection`
   * is `false`, and with `rateLimit` when given.
   */
  constructor(own: Deno.NetAddr, rateLimit?: RateLimit, reflection = true) {
    this.#reflection = reflection;
    this.#port = own.port;
    this.#hostname = own.hostname;
    this.#perMs = rateLimit ? rateLimit.perSecond / 1000 : 0;
    this.#burst = rateLimit ? rateLimit.burst ?? rateLimit.perSecond : 0;
    this.#buckets = rateLimit ? new Map() : null;
    this.#overflow = { tokens: this.#burst, time: 0 };
    this.#debug = udpLogger.isEnabledFor("debug");
  }

  /** `true` to hand the datagram from `from` to the protocol; `false` drops (and counts) it. */
  readonly accept = (from: Deno.NetAddr): boolean => {
    const port = from.port;
    if (this.#reflection) {
      if (port < 38 && forbidden[port] === 1) {
        this.drops.forbiddenPort++;
        return this.#dropped(from, "its source port is a service that answers anything");
      }
      if (port === this.#port && this.#isThisHost(from.hostname)) {
        this.drops.ownAddress++;
        return this.#dropped(from, "it claims to come from this server's own port");
      }
    }
    if (this.#buckets !== null && !this.#take(from.hostname)) {
      this.drops.rateLimited++;
      return this.#dropped(from, "its source is over the rate limit");
    }
    return true;
  };

  #dropped(from: Deno.NetAddr, reason: string): false {
    if (this.#debug) {
      udpLogger.debug("Dropped a datagram from {source}: {reason}", {
        source: formatAddress(from),
        reason,
      });
    }
    return false;
  }

  /** Whether `hostname` is an address of this host: loopback, ours, or an interface's. */
  #isThisHost(hostname: string): boolean {
    if (hostname === this.#hostname) return true;
    if (hostname.startsWith("127.") || hostname === "::1" || hostname.startsWith("::ffff:127.")) {
      return true;
    }
    return (this.#hostAddresses ??= interfaceAddresses()).has(hostname);
  }

  /** Takes one token from `host`'s bucket; `false` when it is empty. */
  #take(host: string): boolean {
    const buckets = this.#buckets!;
    const now = performance.now();
    let bucket = buckets.get(host);
    if (bucket === undefined) {
      // A full table is swept at most once a second, so a flood of new sources costs no more.
      if (buckets.size >= MAX_TRACKED_SOURCES && now - this.#lastSweep >= 1000) this.#sweep(now);
      if (buckets.size >= MAX_TRACKED_SOURCES) {
        bucket = this.#overflow;
      } else {
        bucket = { tokens: this.#burst, time: now };
        buckets.set(host, bucket);
      }
    }
    const tokens = Math.min(this.#burst, bucket.tokens + (now - bucket.time) * this.#perMs);
    bucket.time = now;
    if (tokens < 1) {
      bucket.tokens = tokens;
      return false;
    }
    bucket.tokens = tokens - 1;
    return true;
  }

  /** Forgets the sources whose buckets have filled up again: they are as good as new. */
  #sweep(now: number): void {
    this.#lastSweep = now;
    for (const [host, bucket] of this.#buckets!) {
      if (bucket.tokens + (now - bucket.time) * this.#perMs >= this.#burst) {
        this.#buckets!.delete(host);
      }
    }
  }
}

/** This host's interface addresses; empty without `--allow-sys` (never prompts for it). */
function interfaceAddresses(): Set<string> {
  const permission = { name: "sys", kind: "networkInterfaces" } as const;
  if (Deno.permissions.querySync(permission).state !== "granted") return new Set();
  try {
    return new Set(Deno.networkInterfaces().map((nif) => nif.address));
  } catch {
    return new Set();
  }
}
