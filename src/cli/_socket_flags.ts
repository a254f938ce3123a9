/**
 * The socket-option flags of the server program, and the line that reports
 * the options in force.
 *
 * @module
 */

import type { SocketOptions, UdpSocketOptions } from "../sockopt/socket_options.ts";
import type { SocketOptionValues } from "../sockopt/read_back.ts";
import { LIMITS } from "../sockopt/socket_options.ts";
import { integerFlag, UsageError } from "./_args.ts";

/** The flags' lines in `--help`. */
export const SOCKET_FLAGS_USAGE =
  `Socket options (TCP: set once on the listening socket, accepted connections inherit them;
UDP: --recv-buffer, --send-buffer, --reuse-address (off by default) and --reuse-port only):
  --backlog N               connections the kernel queues before accept (default 511,
                            capped by net.core.somaxconn)
  --reuse-address, --no-reuse-address
                            SO_REUSEADDR: rebind at once over TIME_WAIT (default on;
                            UDP: off, as it would let two servers share the port)
  --reuse-port              SO_REUSEPORT: share the port with other servers (default off;
                            on with --workers; TCP on --backend deno needs deno run
                            --unstable-net; UDP needs --backend epoll)
  --recv-buffer BYTES       SO_RCVBUF (default: the system's; Linux reports it doubled)
  --send-buffer BYTES       SO_SNDBUF (default: the system's; Linux reports it doubled)
  --nodelay, --no-nodelay   TCP_NODELAY: send small writes at once (default on)
  --keepalive               SO_KEEPALIVE: probe idle peers (default off)
  --keepalive-idle S        seconds of silence before the first probe (default: the
                            system's, 7200 on Linux; implies --keepalive)
  --keepalive-interval S    seconds between probes (default: the system's, 75 on Linux;
                            implies --keepalive)
  --keepalive-count N       unanswered probes before dropping the peer (default: the
                            system's, 9 on Linux; implies --keepalive)
  --quickack                TCP_QUICKACK: ACK at once, re-armed after every read
                            (default off; Linux only)
  (--recv-buffer, --send-buffer, the --keepalive-* timings, --quickack and
   --no-reuse-address need FFI: run with -A or --allow-ffi)`;

/** The `parseArgs` configuration of the socket-option flags. */
export const SOCKET_FLAGS = {
  string: [
    "backlog",
    "recv-buffer",
    "send-buffer",
    "keepalive-idle",
    "keepalive-interval",
    "keepalive-count",
  ],
  boolean: ["reuse-address", "reuse-port", "nodelay", "keepalive", "quickack"],
  negatable: ["reuse-address", "nodelay"],
  // Left undefined unless given (parseArgs would default them to false), so the
  // defaults can differ by transport and a TCP-only flag given for UDP is seen.
  default: { "reuse-address": undefined, nodelay: undefined },
} as const;

/** The socket flags that mean nothing to a UDP socket. */
export const TCP_ONLY_FLAGS: readonly (keyof SocketFlags)[] = [
  "backlog",
  "nodelay",
  "keepalive",
  "keepalive-idle",
  "keepalive-interval",
  "keepalive-count",
  "quickack",
];

/** The parsed flags {@linkcode socketOptionsFromFlags} reads. */
export interface SocketFlags {
  backlog?: string;
  "recv-buffer"?: string;
  "send-buffer"?: string;
  "keepalive-idle"?: string;
  "keepalive-interval"?: string;
  "keepalive-count"?: string;
  "reuse-address"?: boolean;
  "reuse-port"?: boolean;
  nodelay?: boolean;
  keepalive?: boolean;
  quickack?: boolean;
}

/**
 * Turns the flags of a UDP server into {@linkcode UdpSocketOptions}. With
 * `alsoTcp` (TCP listeners too), TCP-only flags are theirs; else they are refused.
 *
 * @throws {UsageError} for a TCP-only flag, or a value out of range.
 */
export function udpSocketOptionsFromFlags(flags: SocketFlags, alsoTcp = false): UdpSocketOptions {
  // Booleans not given are false (or undefined, for the negatable nodelay).
  const given = alsoTcp
    ? []
    : TCP_ONLY_FLAGS.filter((name) =>
      flags[name] !== undefined && (name === "nodelay" || flags[name] !== false)
    );
  if (given.length > 0) {
    const names = given.map((name) =>
      name === "nodelay" && !flags.nodelay ? "--no-nodelay" : `--${name}`
    );
    throw new UsageError(
      `Cannot use ${names.join(", ")} with UDP: ` +
        `${given.length === 1 ? "it is" : "they are"} for TCP only; ` +
        `drop ${given.length === 1 ? "it" : "them"} or use --transport tcp`,
    );
  }
  const options: UdpSocketOptions = { reuseAddress: flags["reuse-address"] ?? false };
  if (flags["reuse-port"]) options.reusePort = true;
  if (flags["recv-buffer"] !== undefined) {
    options.receiveBufferSize = integerFlag(
      "recv-buffer",
      flags["recv-buffer"],
      ...LIMITS.bufferSize,
    );
  }
  if (flags["send-buffer"] !== undefined) {
    options.sendBufferSize = integerFlag("send-buffer", flags["send-buffer"], ...LIMITS.bufferSize);
  }
  return options;
}

/**
 * Turns the flags into {@linkcode SocketOptions}.
 *
 * @throws {UsageError} naming the flag, the value and the allowed range.
 */
export function socketOptionsFromFlags(flags: SocketFlags): SocketOptions {
  const number = (name: keyof SocketFlags, [min, max]: readonly [number, number]) =>
    flags[name] === undefined ? undefined : integerFlag(name, flags[name], min, max);
  const options: SocketOptions = {
    reuseAddress: flags["reuse-address"] ?? true,
    noDelay: flags.nodelay ?? true,
  };
  const backlog = number("backlog", LIMITS.backlog);
  if (backlog !== undefined) options.backlog = backlog;
  if (flags["reuse-port"]) options.reusePort = true;
  const receive = number("recv-buffer", LIMITS.bufferSize);
  if (receive !== undefined) options.receiveBufferSize = receive;
  const send = number("send-buffer", LIMITS.bufferSize);
  if (send !== undefined) options.sendBufferSize = send;
  const idle = number("keepalive-idle", LIMITS.keepAliveIdle);
  const interval = number("keepalive-interval", LIMITS.keepAliveInterval);
  const count = number("keepalive-count", LIMITS.keepAliveCount);
  if (idle !== undefined || interval !== undefined || count !== undefined) {
    options.keepAlive = {
      ...(idle === undefined ? {} : { idle }),
      ...(interval === undefined ? {} : { interval }),
      ...(count === undefined ? {} : { count }),
    };
  } else if (flags.keepalive) {
    options.keepAlive = true;
  }
  if (flags.quickack) options.quickAck = true;
  return options;
}

/** The options of a UDP socket in force, read back from it, as the startup line shows them. */
export function describeUdpSocketOptions(values: SocketOptionValues): string {
  return [
    `rcvbuf ${values.receiveBufferSize}`,
    `sndbuf ${values.sendBufferSize}`,
    values.reuseAddress ? "reuseaddr" : "no reuseaddr",
    ...(values.reusePort ? ["reuseport"] : []),
  ].join(", ");
}

/**
 * The options in force, as the startup line shows them: `values` read back
 * from the listening socket, the backlog the kernel uses, and whether
 * quick-ack is re-armed per read (the listener's own flag means nothing).
 */
export function describeSocketOptions(
  values: SocketOptionValues,
  backlog: number,
  quickAck: boolean,
): string {
  const parts = [
    `backlog ${backlog}`,
    values.noDelay ? "nodelay" : "no nodelay",
    values.keepAlive
      ? `keepalive idle ${values.keepAliveIdle}s interval ${values.keepAliveInterval}s ` +
        `count ${values.keepAliveCount}`
      : "no keepalive",
    `rcvbuf ${values.receiveBufferSize}`,
    `sndbuf ${values.sendBufferSize}`,
    values.reuseAddress ? "reuseaddr" : "no reuseaddr",
  ];
  if (values.reusePort) parts.push("reuseport");
  if (quickAck) parts.push("quickack");
  return parts.join(", ");
}

/**
 * The backlog the kernel will use for `requested`: Linux caps it at
 * `net.core.somaxconn`.
 */
export function effectiveBacklog(requested: number): number {
  if (Deno.build.os !== "linux") return requested;
  try {
    const cap = Number(Deno.readTextFileSync("/proc/sys/net/core/somaxconn").trim());
    return Number.isInteger(cap) && cap > 0 ? Math.min(requested, cap) : requested;
  } catch {
    return requested;
  }
}
