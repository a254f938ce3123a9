/**
 * What the two floors (`tcp_load_floor.ts`, `udp_load_floor.ts`) share:
 * their flags, the libc calls they make over FFI, the monotonic clock read
 * as the C generators read it, and the server's address. Nothing of this
 * module's code: a floor measures what Deno itself costs a load generator.
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";

/** The case a floor runs, from its flags. */
export interface FloorCase {
  host: string;
  port: number;
  size: number;
  connections: number;
  duration: number;
  /** `--check`: check every byte of each echo, as `./bench` does (the TCP floor). */
  check: boolean;
  /** The server's `struct sockaddr_in`. */
  sockaddr: Uint8Array;
}

/**
 * Reads `--host`, `--port`, `--size`, `--connections`, `--duration` and
 * `--check`, with `mostSize` the largest message, and checks that this is Linux on
 * x86_64 (whose `struct epoll_event` the floors read).
 */
export function floorCase(args: string[], mostSize: number): FloorCase {
  const flags = parseArgs(args, {
    string: ["host", "port", "size", "connections", "duration"],
    boolean: ["check"],
    default: { host: "127.0.0.1", size: "1000", connections: "10", duration: "4" },
  });
  const port = Number(flags.port);
  const size = Number(flags.size);
  const connections = Number(flags.connections);
  const duration = Number(flags.duration);
  for (const [name, value, most] of [["port", port, 65535], ["size", size, mostSize]] as const) {
    if (!Number.isInteger(value) || value < 1 || value > most) {
      throw new RangeError(
        `Cannot use --${name} ${flags[name]}: give a whole number from 1 to ${most}`,
      );
    }
  }
  if (!Number.isInteger(connections) || connections < 1) {
    throw new RangeError(
      `Cannot use --connections ${flags.connections}: give a whole number >= 1`,
    );
  }
  if (!(duration > 0)) {
    throw new RangeError(`Cannot use --duration ${flags.duration}: give seconds > 0`);
  }
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
    throw new Error(
      `Cannot run on ${Deno.build.os} ${Deno.build.arch}: this program reads Linux's x86_64 ` +
        "struct epoll_event; run it on Linux on x86_64",
    );
  }
  const host = String(flags.host);
  const address: number[] = host.split(".").map(Number);
  if (address.length !== 4 || address.some((byte) => !(byte >= 0 && byte <= 255))) {
    throw new TypeError(`Cannot use --host ${host}: give an IPv4 address such as 127.0.0.1`);
  }
  const sockaddr = new Uint8Array(16);
  new DataView(sockaddr.buffer).setUint16(0, AF_INET, true);
  new DataView(sockaddr.buffer).setUint16(2, port);
  sockaddr.set(address, 4);
  return { host, port, size, connections, duration, check: flags.check, sockaddr };
}

export const AF_INET = 2;
export const EAGAIN = 11;
export const EPOLLIN = 0x1, EPOLLOUT = 0x4, EPOLLERR = 0x8, EPOLLHUP = 0x10, EPOLL_CTL_ADD = 1;
export const MSG_DONTWAIT = 0x40, MSG_NOSIGNAL = 0x4000;

/** The libc calls the floors make. */
export const libc = Deno.dlopen("libc.so.6", {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
  memcmp: { parameters: ["buffer", "buffer", "usize"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
}).symbols;

/** This thread's `errno`, which the FFI calls above set. */
export const errnoView = new Deno.UnsafePointerView(libc.__errno_location()!);

const CLOCK_MONOTONIC = 1;
const timespec = new Uint32Array(4);
/** Seconds on the monotonic clock, as the C generators' `now()`. */
export const now = (): number => (
  libc.clock_gettime(CLOCK_MONOTONIC, timespec), timespec[0] + timespec[2] / 1e9
);
