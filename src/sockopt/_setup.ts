/**
 * Applying {@linkcode SocketOptions} to sockets: once on a listening socket
 * for what the kernel passes on to accepted connections, and on a client's
 * connection. Without FFI, what Deno sets natively (`setNoDelay`,
 * `setKeepAlive`) is left for each connection and one warning names the rest.
 *
 * @module
 */

import type { OptionName, PlatformConstants } from "../libc/_constants.ts";
import { findSocketFd, identify, type SocketIdentity } from "../sockets/_fd.ts";
import { isLibc, type Libc, loadLibc } from "../libc/_libc.ts";
import { locateSocketFd } from "../sockets/_locate.ts";
import { setOption } from "./_options.ts";
import { readSocketOptions } from "./read_back.ts";
import type { SocketOptions, UdpSocketOptions } from "./socket_options.ts";
import { sockoptLogger } from "./_log.ts";
import { formatAddress } from "../_address.ts";

/**
 * What is left to do on each connection once its socket, or its listener,
 * has been set up.
 */
export interface ConnectionSetup {
  /** Set with Deno's `conn.setNoDelay` on each connection; `undefined`: nothing to do. */
  readonly noDelay: boolean | undefined;
  /** Set with Deno's `conn.setKeepAlive` on each connection; `undefined`: nothing to do. */
  readonly keepAlive: boolean | undefined;
  /** Re-arm TCP_QUICKACK after every read (through FFI). */
  readonly quickAck: boolean;
  /** Options the listener does not pass on on this system, to set on each connection (FFI). */
  readonly perConnection: readonly Setting[];
}

/** Nothing to do per connection. */
const NOTHING: ConnectionSetup = {
  noDelay: undefined,
  keepAlive: undefined,
  quickAck: false,
  perConnection: [],
};

/** One `setsockopt` call: our option name, its label in messages, the value. */
export type Setting = readonly [name: OptionName, label: string, value: number | boolean];

/**
 * Sets the options the kernel passes on to accepted sockets (buffers,
 * TCP_NODELAY, keep-alive and its timing, SO_REUSEADDR) once on `listener`,
 * and returns what each accepted connection still needs.
 *
 * @throws {Error} naming the option, the value and the kernel's reason when
 * `setsockopt` refuses a value.
 */
export function setUpListener(listener: Deno.TcpListener, options: SocketOptions): ConnectionSetup {
  return setUp(identify(listener), settingsOf(options, true), options);
}

/**
 * Sets `options` on `fd`, a listening socket not bound yet (one the epoll
 * backend opened itself): SO_REUSEADDR (on unless `reuseAddress` is
 * `false`, as Deno does), SO_REUSEPORT when asked, and what the kernel
 * passes on to accepted sockets. Returns what each accepted connection
 * still needs.
 *
 * @throws {Error} naming the option, the value and the kernel's reason when
 * `setsockopt` refuses a value.
 */
export function setUpUnboundListener(
  libc: Libc,
  fd: number,
  local: Deno.NetAddr,
  options: SocketOptions,
): ConnectionSetup {
  const settings: Setting[] = [["reuseAddress", "reuseAddress", options.reuseAddress ?? true]];
  if (options.reusePort) settings.push(["reusePort", "reusePort", true]);
  settings.push(...settingsOf(options, false));
  return configure(libc, fd, { transport: "tcp", local }, settings, options);
}

/**
 * The settings a listener on a system with `constants` does not pass on to
 * accepted sockets: they are set on each connection as well.
 */
export function notPassedOn(settings: readonly Setting[], constants: PlatformConstants): Setting[] {
  return settings.filter(([name]) => constants.notInherited.includes(name));
}

/**
 * Sets `options` on a client's connection and returns what its transport
 * still needs to do (quick-ack re-arming, native fallbacks).
 *
 * @throws {Error} naming the option, the value and the kernel's reason when
 * `setsockopt` refuses a value.
 */
export function setUpConnection(conn: Deno.TcpConn, options: SocketOptions): ConnectionSetup {
  return setUp(identify(conn), settingsOf(options, false), options);
}

/**
 * Sets `options` on `fd`, a client socket this module opened itself (the
 * epoll backend), before it connects to `remote`. Returns what its driver
 * still needs to do (quick-ack re-arming).
 *
 * @throws {Error} naming the option, the value and the kernel's reason when
 * `setsockopt` refuses a value.
 */
export function setUpConnectedSocket(
  libc: Libc,
  fd: number,
  remote: Deno.NetAddr,
  options: SocketOptions,
): ConnectionSetup {
  // Not bound yet: its local address is the kernel's choice at the connect.
  const local: Deno.NetAddr = {
    transport: "tcp",
    hostname: remote.hostname.includes(":") ? "::" : "0.0.0.0",
    port: 0,
  };
  return configure(
    libc,
    fd,
    { transport: "tcp", local, remote },
    settingsOf(options, false),
    options,
  );
}

/**
 * Sets the buffer sizes of the UDP socket bound to `local` (its
 * `reuseAddress` was applied at the bind); `knownFd` is its descriptor when
 * this module opened it, else it is found by its address. Without FFI, or when the socket's
 * descriptor cannot be found, one warning names what was not set.
 *
 * @throws {Error} naming the option, the value and the kernel's reason when
 * `setsockopt` refuses a value.
 */
export function setUpDatagramSocket(
  local: Deno.NetAddr,
  options: UdpSocketOptions,
  knownFd?: number,
): void {
  const identity: SocketIdentity = { transport: "udp", local };
  const settings: Setting[] = [];
  const { receiveBufferSize, sendBufferSize } = options;
  if (receiveBufferSize !== undefined) {
    settings.push(["receiveBufferSize", "receiveBufferSize", receiveBufferSize]);
  }
  if (sendBufferSize !== undefined) {
    settings.push(["sendBufferSize", "sendBufferSize", sendBufferSize]);
  }
  const libc = loadLibc();
  if (!isLibc(libc)) {
    if (settings.length > 0) warnOnce(identity, labels(settings), libc.reason);
    return;
  }
  let fd: number | null = knownFd ?? null;
  try {
    fd ??= findSocketFd(libc, identity);
  } catch (error) {
    if (settings.length > 0) warnOnce(identity, labels(settings), (error as Error).message);
    return;
  }
  if (fd === null) {
    if (settings.length > 0) {
      warnOnce(identity, labels(settings), "its file descriptor was not found");
    }
    return;
  }
  for (const [name, , value] of settings) setOption(libc, fd, name, value);
  logValues(libc, fd, identity);
}

function labels(settings: readonly Setting[]): string[] {
  return settings.map(([, label, value]) => `${label}=${value}`);
}

/** The `setsockopt` calls `options` asks for, in order; `listener` adds the listener-only ones. */
export function settingsOf(options: SocketOptions, listener: boolean): Setting[] {
  const settings: Setting[] = [];
  const add = (name: OptionName, label: string, value: number | boolean | undefined) => {
    if (value !== undefined) settings.push([name, label, value]);
  };
  if (listener) add("reuseAddress", "reuseAddress", options.reuseAddress);
  add("receiveBufferSize", "receiveBufferSize", options.receiveBufferSize);
  add("sendBufferSize", "sendBufferSize", options.sendBufferSize);
  add("noDelay", "noDelay", options.noDelay ?? true);
  const { keepAlive } = options;
  if (keepAlive !== undefined) {
    add("keepAlive", "keepAlive", keepAlive !== false);
    if (typeof keepAlive === "object") {
      add("keepAliveIdle", "keepAlive.idle", keepAlive.idle);
      add("keepAliveInterval", "keepAlive.interval", keepAlive.interval);
      add("keepAliveCount", "keepAlive.count", keepAlive.count);
    }
  }
  return settings;
}

function setUp(
  identity: SocketIdentity,
  settings: Setting[],
  options: SocketOptions,
): ConnectionSetup {
  const libc = loadLibc();
  if (!isLibc(libc)) return fallBack(identity, settings, options, libc.reason);
  let fd: number | null;
  try {
    fd = identity.remote ? locateSocketFd(libc, identity) : findSocketFd(libc, identity);
  } catch (error) {
    // Listing the descriptors needs read access to /proc/self/fd (or /dev/fd).
    return fallBack(identity, settings, options, (error as Error).message);
  }
  if (fd === null) {
    return fallBack(identity, settings, options, "its file descriptor was not found");
  }
  return configure(libc, fd, identity, settings, options);
}

/** Sets `settings` on `fd`, warns once about what this system lacks, and says what is left. */
function configure(
  libc: Libc,
  fd: number,
  identity: SocketIdentity,
  settings: Setting[],
  options: SocketOptions,
): ConnectionSetup {
  const quickAck = options.quickAck === true;
  const unsupported: string[] = [];
  for (const [name, label, value] of settings) {
    if (libc.constants.options[name] === undefined) unsupported.push(`${label}=${value}`);
    else setOption(libc, fd, name, value);
  }
  const canQuickAck = libc.constants.options.quickAck !== undefined;
  if (quickAck && !canQuickAck) unsupported.push("quickAck=true");
  if (unsupported.length > 0) {
    warnOnce(identity, unsupported, `not supported on ${Deno.build.os}`);
  }
  logValues(libc, fd, identity);
  const perConnection = identity.remote ? [] : notPassedOn(settings, libc.constants);
  if (!(quickAck && canQuickAck) && perConnection.length === 0) return NOTHING;
  return { ...NOTHING, quickAck: quickAck && canQuickAck, perConnection };
}

/** Without FFI: Deno's own setters per connection, and one warning for the rest. */
function fallBack(
  identity: SocketIdentity,
  settings: Setting[],
  options: SocketOptions,
  reason: string,
): ConnectionSetup {
  const { keepAlive } = options;
  const native = new Set<OptionName>(["noDelay", "keepAlive"]);
  const lost = settings
    .filter(([name, , value]) => !native.has(name) && !(name === "reuseAddress" && value === true))
    .map(([, label, value]) => `${label}=${value}`);
  if (options.quickAck) lost.push("quickAck=true");
  if (lost.length > 0) {
    warnOnce(
      identity,
      lost,
      `${reason}; TCP_NODELAY and SO_KEEPALIVE are set through Deno instead`,
    );
  }
  return {
    noDelay: options.noDelay ?? true,
    keepAlive: keepAlive === undefined ? undefined : keepAlive !== false,
    quickAck: false,
    perConnection: [],
  };
}

const warned = new Set<string>();

function warnOnce(identity: SocketIdentity, lost: string[], reason: string): void {
  const key = `${lost.join(",")}|${reason}`;
  if (warned.has(key)) return;
  warned.add(key);
  sockoptLogger.warning(
    "Socket options not set on {address}: {options} ({reason}).",
    { address: describe(identity), options: lost.join(", "), reason },
  );
}

function logValues(libc: Libc, fd: number, identity: SocketIdentity): void {
  if (!sockoptLogger.isEnabledFor("debug")) return;
  sockoptLogger.debug("Socket options of {address}: {values}", {
    address: describe(identity),
    values: readSocketOptions(libc, fd, identity.transport),
  });
}

function describe(identity: SocketIdentity): string {
  const local = `${identity.transport} ${formatAddress(identity.local)}`;
  return identity.remote ? `${local} to ${formatAddress(identity.remote)}` : local;
}
