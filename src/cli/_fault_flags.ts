/**
 * The server program's faults on purpose: `--delay`, `--jitter`,
 * `--throttle`, `--reset-after` and `--drop`, turned into the echo
 * servers' `faults`, and their part of the startup line.
 *
 * @module
 */

import type { EchoFaults, UdpEchoFaults } from "../echo/faults.ts";
import { integerFlag, UsageError } from "./_args.ts";

/** The flags' lines in `--help`. */
export const FAULT_FLAGS_USAGE =
  `Faults on purpose (to test what sits in front: a proxy's timeouts, a balancer's retries;
each off by default, named on the startup line, counted in the stop line's faults):
  --delay MS                hold each answer back MS milliseconds (TCP: each read's echo,
                            UDP: each datagram's); answers keep their order
  --jitter MS               spread --delay: each delay uniform in [MS - J, MS + J], at
                            least 0 (needs --delay)
  --throttle BYTES_PER_S    send each connection's echo at most this fast; reading slows
                            to match (TCP only)
  --reset-after BYTES       once a connection has received BYTES, echo them, then reset it
                            (RST: the client sees ECONNRESET; needs FFI) (TCP only)
  --drop PERCENT            leave this share of datagrams unanswered, at random, counted
                            as drops.injected (0 to 100; UDP only)`;

/** The `parseArgs` string flags. */
export const FAULT_FLAGS: readonly string[] = [
  "delay",
  "jitter",
  "throttle",
  "reset-after",
  "drop",
];

/** The parsed flags {@linkcode faultsFromFlags} reads. */
export interface FaultFlags {
  delay?: string;
  jitter?: string;
  throttle?: string;
  "reset-after"?: string;
  drop?: string;
}

/** The faults of the TCP and of the UDP listeners; `undefined` where none is on. */
export interface FaultsInForce {
  tcp?: EchoFaults;
  udp?: UdpEchoFaults;
}

const MAX_MS = 2 ** 31 - 1;

/**
 * The faults the flags ask for, per transport.
 *
 * @throws {UsageError} for a bad value, `--jitter` without `--delay`, or a
 * fault the transports served do not have.
 */
export function faultsFromFlags(
  flags: FaultFlags,
  transports: readonly ("tcp" | "udp")[],
): FaultsInForce {
  const tcp = transports.includes("tcp");
  const udp = transports.includes("udp");
  for (const name of ["throttle", "reset-after"] as const) {
    if (flags[name] !== undefined && !tcp) {
      throw new UsageError(
        `Cannot use --${name} with UDP: it is for TCP only (UDP has no connections); ` +
          "drop it or use --transport tcp (or tcp,udp)",
      );
    }
  }
  if (flags.drop !== undefined && !udp) {
    throw new UsageError(
      "Cannot use --drop with TCP: it is for UDP only (TCP does not lose data); " +
        "drop it or use --transport udp (or tcp,udp)",
    );
  }
  if (flags.jitter !== undefined && flags.delay === undefined) {
    throw new UsageError(
      "Cannot use --jitter without --delay: it spreads the delay; add --delay MS or drop it",
    );
  }
  const timing: { delay?: number; jitter?: number } = {};
  if (flags.delay !== undefined) timing.delay = integerFlag("delay", flags.delay, 1, MAX_MS);
  if (flags.jitter !== undefined) timing.jitter = integerFlag("jitter", flags.jitter, 0, MAX_MS);
  const inForce: FaultsInForce = {};
  if (tcp) {
    const faults: EchoFaults = { ...timing };
    if (flags.throttle !== undefined) {
      faults.throttle = integerFlag("throttle", flags.throttle, 1, 2 ** 53 - 1);
    }
    if (flags["reset-after"] !== undefined) {
      faults.resetAfter = integerFlag("reset-after", flags["reset-after"], 1, 2 ** 53 - 1);
    }
    if (Object.keys(faults).length > 0) inForce.tcp = faults;
  }
  if (udp) {
    const faults: UdpEchoFaults = { ...timing };
    if (flags.drop !== undefined) faults.drop = percentFlag("drop", flags.drop);
    if (Object.keys(faults).length > 0) inForce.udp = faults;
  }
  return inForce;
}

/** A percentage from 0 to 100, fractions allowed (`12.5`). */
function percentFlag(name: string, value: unknown): number {
  const text = String(value);
  const number = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(number >= 0 && number <= 100)) {
    throw new UsageError(
      `Cannot use --${name} ${JSON.stringify(text)}: it must be a percentage from 0 to 100`,
    );
  }
  return number;
}

/** The startup line's part for `faults`, such as `faults: delay 300±50 ms, drop 5%`; "" for none. */
export function describeFaults(faults: EchoFaults & UdpEchoFaults | undefined): string {
  if (faults === undefined) return "";
  const parts: string[] = [];
  const { delay = 0, jitter = 0, throttle, resetAfter, drop } = faults;
  if (delay > 0) parts.push(`delay ${delay}${jitter > 0 ? `±${jitter}` : ""} ms`);
  if (throttle !== undefined) parts.push(`throttle ${throttle} B/s`);
  if (resetAfter !== undefined) parts.push(`reset after ${resetAfter} B`);
  if (drop !== undefined && drop > 0) parts.push(`drop ${drop}%`);
  return parts.length === 0 ? "" : `; faults: ${parts.join(", ")}`;
}
