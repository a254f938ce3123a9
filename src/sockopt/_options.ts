/**
 * Typed `setsockopt`/`getsockopt` for the options this module knows, with
 * errors that name the option, the value and the kernel's reason.
 *
 * @module
 */

import type { OptionName } from "../libc/_constants.ts";
import type { Libc } from "../libc/_libc.ts";

/** The C names, for messages a reader can look up. */
export const C_NAMES: Record<OptionName, string> = {
  reuseAddress: "SO_REUSEADDR",
  reusePort: "SO_REUSEPORT",
  receiveBufferSize: "SO_RCVBUF",
  sendBufferSize: "SO_SNDBUF",
  keepAlive: "SO_KEEPALIVE",
  noDelay: "TCP_NODELAY",
  keepAliveIdle: "TCP_KEEPIDLE",
  keepAliveInterval: "TCP_KEEPINTVL",
  keepAliveCount: "TCP_KEEPCNT",
  quickAck: "TCP_QUICKACK",
};

// One int and one length, reused by every call: no allocation per option.
const value = new Int32Array(1);
const length = new Uint32Array(1);

function codeOf(libc: Libc, name: OptionName) {
  const code = libc.constants.options[name];
  if (!code) {
    throw new Deno.errors.NotSupported(
      `Cannot use ${C_NAMES[name]} (${name}) on ${Deno.build.os}: it is not supported there`,
    );
  }
  return code;
}

/**
 * Sets option `name` on socket `fd`; booleans are sent as 1 or 0.
 *
 * @throws {Deno.errors.NotSupported} when the system has no such option.
 * @throws {Error} with the kernel's reason when `setsockopt` fails.
 */
export function setOption(libc: Libc, fd: number, name: OptionName, to: number | boolean): void {
  const { level, name: optname } = codeOf(libc, name);
  value[0] = typeof to === "boolean" ? (to ? 1 : 0) : to;
  if (libc.symbols.setsockopt(fd, level, optname, value, 4) !== 0) {
    throw libc.error(libc.errno(), `set ${C_NAMES[name]} (${name}) to ${to} on socket fd ${fd}`);
  }
}

/**
 * Reads option `name` of socket `fd` back from the kernel, as an integer
 * (booleans as 0 or 1; Linux reports buffer sizes doubled, as it keeps them).
 *
 * @throws {Deno.errors.NotSupported} when the system has no such option.
 * @throws {Error} with the kernel's reason when `getsockopt` fails.
 */
export function getOption(libc: Libc, fd: number, name: OptionName): number {
  const { level, name: optname } = codeOf(libc, name);
  length[0] = 4;
  if (libc.symbols.getsockopt(fd, level, optname, value, length) !== 0) {
    throw libc.error(libc.errno(), `read ${C_NAMES[name]} (${name}) of socket fd ${fd}`);
  }
  return value[0];
}
