/**
 * Faults on purpose: an echo server that answers late, slowly, resets its
 * connections or loses datagrams, so that what sits in front of it (a
 * proxy's timeouts, a load balancer's retries, a client's patience) can be
 * tested. Each fault is off unless asked for.
 *
 * @module
 */

/**
 * Faults a TCP echo server injects on purpose; see
 * {@linkcode EchoServerOptions.faults}. Each applies to every connection,
 * in either API and on either backend.
 *
 * @example Answer each read 300 ms (± 50 ms) late, at most 1000 bytes a second
 * ```ts
 * import { serveEcho } from "@x/echo";
 *
 * const server = serveEcho({ port: 0, faults: { delay: 300, jitter: 50, throttle: 1000 } });
 * await server.shutdown();
 * ```
 */
export interface EchoFaults {
  /**
   * Milliseconds each read's answer is held back. Answers keep their order:
   * one whose delay would end sooner than the one before it goes out with
   * that one. What is held counts against the server's `maxBuffered`, and
   * a connection holding more than its write buffer's high water mark stops
   * being read until it holds no more than the low one (as a slow network
   * would: at most a high water mark in flight per delay). Default 0: none.
   */
  delay?: number;
  /**
   * Spreads `delay`: each delay is drawn uniformly from `[delay - jitter,
   * delay + jitter]`, and is at least 0. Needs `delay`. Default 0.
   */
  jitter?: number;
  /**
   * The most bytes a second each connection's echo is sent at (a token
   * bucket refilled every 20 ms, holding at most 20 ms of the rate, and at
   * least one byte). What waits counts as the delay's does, and reading
   * stops while it is past the high water mark. Default: no limit.
   */
  throttle?: number;
  /**
   * Once a connection has received this many bytes, it is reset: the echo
   * of those bytes (no more: what came after them in the same read is
   * dropped, and nothing more is read) is sent, after its delay and
   * throttle, then the socket is closed with SO_LINGER {on, 0}, so the peer
   * gets a TCP reset (RST) and sees ECONNRESET instead of end of input.
   * Bytes the kernel had not sent yet when the reset goes out are lost with
   * it (a peer that reads slowly may see fewer). Counted in
   * `counters.faults.resets`. Needs FFI (`--allow-ffi`; the deno backend
   * also reads `/proc/self/fd` to find the socket's descriptor); without it
   * the connection is closed with FIN, and a warning says so once.
   */
  resetAfter?: number;
}

/**
 * Faults a UDP echo server injects on purpose; see
 * {@linkcode UdpEchoServerOptions.faults}.
 *
 * @example Lose one datagram in ten, answer the others 100 ms late
 * ```ts
 * import { serveUdpEcho } from "@x/echo";
 *
 * const server = await serveUdpEcho({ port: 0, faults: { drop: 10, delay: 100 } });
 * await server.shutdown();
 * ```
 */
export interface UdpEchoFaults {
  /**
   * Milliseconds each datagram's answer is held back; answers go out in the
   * order their datagrams came. At most 4 MiB of answers are held: past
   * that, a datagram is dropped unanswered and counted in
   * `counters.drops.overflow`. Answers still held when the server shuts
   * down are not sent. Default 0: none.
   */
  delay?: number;
  /** Spreads `delay` as {@linkcode EchoFaults.jitter} does. Needs `delay`. Default 0. */
  jitter?: number;
  /**
   * The percentage (0 to 100, fractions allowed) of datagrams left
   * unanswered, chosen at random; counted in `counters.drops.injected`.
   * Default 0.
   */
  drop?: number;
}

/**
 * What a TCP echo server's faults did, in `counters.faults` (present when
 * {@linkcode EchoFaults} are on).
 *
 * @example
 * ```ts
 * import { serveEcho } from "@x/echo";
 * import type { EchoFaultCounters } from "@x/echo/echo";
 *
 * const server = serveEcho({ port: 0, faults: { resetAfter: 4096 } });
 * const faults: EchoFaultCounters | undefined = server.counters.faults;
 * console.log(faults?.resets); // 0
 * await server.shutdown();
 * ```
 */
export interface EchoFaultCounters {
  /** Answers (one per read) held back by `delay`. */
  delayed: number;
  /** Bytes sent at the pace `throttle` sets. */
  throttled: number;
  /** Connections reset by `resetAfter`. */
  resets: number;
}

/**
 * What a UDP echo server's faults did, in `counters.faults` (present when
 * {@linkcode UdpEchoFaults} are on). Datagrams `drop` left unanswered are
 * in `counters.drops.injected`.
 *
 * @example
 * ```ts
 * import type { UdpEchoFaultCounters } from "@x/echo/echo";
 *
 * const report = (faults: UdpEchoFaultCounters) => `${faults.delayed} answers held back`;
 * ```
 */
export interface UdpEchoFaultCounters {
  /** Answers held back by `delay`. */
  delayed: number;
}
