/**
 * The one binding of the C library, through Deno's FFI (`Deno.dlopen`,
 * which needs `--allow-ffi`): opened once, on first use, for the poller,
 * the sockets the epoll backend opens and the socket options alike. One
 * errno reader and one error style serve them all.
 *
 * The portable calls (sockets, options, addresses, `recv`/`send`) are there
 * on Linux and macOS; Linux's own (epoll, `eventfd`, `accept4`,
 * `getaddrinfo` with Linux's struct layout) only on Linux.
 *
 * @module
 */

import {
  EACCES,
  EADDRINUSE,
  EADDRNOTAVAIL,
  EBADF,
  ECONNABORTED,
  ECONNREFUSED,
  ECONNRESET,
  ENOTCONN,
  EPIPE,
  ETIMEDOUT,
  type PlatformConstants,
  platformConstants,
} from "./_constants.ts";

// ssize_t results are declared i32: every length here is below 2^31, -1 stays -1,
// and a number (not number | bigint) keeps the calls on V8's fast path.
const PORTABLE = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  dup: { parameters: ["i32"], result: "i32" },
  /** A reset on the deno backend: a connection's descriptor replaced (see `_connection.ts`). */
  dup2: { parameters: ["i32", "i32"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
  /** The bench's check of an echo against what was sent. */
  memcmp: { parameters: ["buffer", "buffer", "usize"], result: "i32" },
} as const;

const LINUX = {
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  /** The same call on one of Deno's blocking threads: it resolves when events come. */
  epoll_wait_blocking: {
    name: "epoll_wait",
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
  /**
   * `epoll_wait` with a timeout in nanoseconds (a `struct timespec`; Linux
   * 5.11, glibc 2.35), on a blocking thread: what lets the poller's timers
   * fire to the microsecond rather than the millisecond. `null` where the
   * C library lacks it.
   */
  epoll_pwait2_blocking: {
    name: "epoll_pwait2",
    parameters: ["i32", "buffer", "i32", "buffer", "pointer"],
    result: "i32",
    nonblocking: true,
    optional: true,
  },
  /** The same on this thread, for a wait here that ends at a timer (see `Poller.#waitHere`). */
  epoll_pwait2: {
    parameters: ["i32", "buffer", "i32", "buffer", "pointer"],
    result: "i32",
    optional: true,
  },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  sendto: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"],
    result: "i32",
  },
  /** The timeout is always null: the socket is non-blocking and read only when ready. */
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
  sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  getaddrinfo: { parameters: ["buffer", "buffer", "buffer", "buffer"], result: "i32" },
  freeaddrinfo: { parameters: ["pointer"], result: "void" },
  gai_strerror: { parameters: ["i32"], result: "pointer" },
  /** Read by `_clock.ts`, with Linux's `struct timespec` and clock numbers. */
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
} as const;

/**
 * The portable calls. Lengths (`usize`) are bigints: a number there would
 * make V8 throw away the optimised code of every caller ("not a BigInt");
 * {@linkcode sizeArgument} makes them without allocating.
 */
export type PortableSymbols = Deno.DynamicLibrary<typeof PORTABLE>["symbols"];
/** Linux's own calls. */
export type LinuxSymbols = Deno.DynamicLibrary<typeof LINUX>["symbols"];

/** How a failed call becomes an error: the same for every layer. */
export interface ErrnoReader {
  /** The calling thread's `errno` right after a failed call. */
  errno(): number;
  /**
   * An error for errno `code`, of the class Deno itself throws for it (so
   * callers tell a reset from a refusal), saying what could not be done:
   * `Cannot ${action}: ${errno name} (${strerror}, os error ${code})`, such as
   * `Cannot listen on 127.0.0.1:80: EACCES (permission denied, os error 13)`.
   */
  error(code: number, action: string): Error;
}

/** The opened library. */
export interface Libc extends ErrnoReader {
  /** The system's option numbers and `sockaddr` layout. */
  readonly constants: PlatformConstants;
  /** The calls every supported system has. */
  readonly symbols: PortableSymbols;
  /** Linux's own calls; `null` on other systems. */
  readonly linux: LinuxSymbols | null;
  /** `strerror(code)`. */
  describe(code: number): string;
}

/** The library on Linux, where its own calls are there. */
export type LinuxLibc = Libc & { readonly linux: LinuxSymbols };

/** Why libc could not be used: a sentence for the user, naming the fix. */
export interface LibcUnavailable {
  /** The sentence. */
  reason: string;
  /** `true` when the fix is a permission (`--allow-ffi`), not another system. */
  permission: boolean;
}

let cached: Libc | LibcUnavailable | undefined;

/**
 * Opens libc once and returns it, or why it cannot be used: no
 * `--allow-ffi`, an unknown operating system, or no library found.
 */
export function loadLibc(): Libc | LibcUnavailable {
  return cached ??= open();
}

/** `true` when {@linkcode loadLibc} gave a usable library. */
export function isLibc(value: Libc | LibcUnavailable): value is Libc {
  return "symbols" in value;
}

/**
 * {@linkcode loadLibc}, or an error saying why `action` cannot be done.
 *
 * @throws {Deno.errors.NotCapable} without `--allow-ffi`; {Deno.errors.NotSupported} elsewhere.
 */
export function requireLibc(action: string): Libc {
  const libc = loadLibc();
  if (isLibc(libc)) return libc;
  const message = `Cannot ${action}: ${libc.reason}`;
  throw libc.permission
    ? new Deno.errors.NotCapable(message)
    : new Deno.errors.NotSupported(message);
}

function open(): Libc | LibcUnavailable {
  const constants = platformConstants();
  if (constants === null) {
    return { reason: `FFI sockets are not supported on ${Deno.build.os}`, permission: false };
  }
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return { reason: "FFI is not allowed; run with --allow-ffi (or -A)", permission: true };
  }
  const isLinux = Deno.build.os === "linux";
  const errnoSymbol = { [constants.errnoLocation]: { parameters: [], result: "pointer" } } as const;
  let library;
  try {
    library = Deno.dlopen(
      constants.libc,
      {
        ...PORTABLE,
        ...(isLinux ? LINUX : {}),
        ...errnoSymbol,
      } as typeof PORTABLE & typeof LINUX & Record<string, { parameters: []; result: "pointer" }>,
    );
  } catch (error) {
    return {
      reason: `cannot open ${constants.libc}: ${(error as Error).message}`,
      permission: false,
    };
  }
  const { symbols } = library;
  const errnoLocation = symbols[constants.errnoLocation] as () => Deno.PointerValue;
  // errno lives at a fixed address per thread; the calls that read it run on this one
  // (each Web Worker loads this module, and so reads its own thread's errno).
  const where = errnoLocation();
  const errnoView = where === null ? null : new Deno.UnsafePointerView(where);
  const describe = (code: number): string => {
    const text = symbols.strerror(code);
    return text === null ? `errno ${code}` : new Deno.UnsafePointerView(text).getCString();
  };
  return {
    constants,
    symbols,
    linux: isLinux ? symbols : null,
    errno: () => errnoView?.getInt32() ?? 0,
    describe,
    error: (code, action) => errnoError(code, `Cannot ${action}: ${errnoText(code, describe)}`),
  };
}

/**
 * Linux's names of the errno values a socket call may set. Other systems
 * share the numbers up to 34 except 11 (EAGAIN on Linux, EDEADLK on BSD).
 */
const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  4: "EINTR",
  5: "EIO",
  9: "EBADF",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  22: "EINVAL",
  23: "ENFILE",
  24: "EMFILE",
  32: "EPIPE",
  38: "ENOSYS",
  88: "ENOTSOCK",
  90: "EMSGSIZE",
  92: "ENOPROTOOPT",
  93: "EPROTONOSUPPORT",
  95: "EOPNOTSUPP",
  97: "EAFNOSUPPORT",
  98: "EADDRINUSE",
  99: "EADDRNOTAVAIL",
  100: "ENETDOWN",
  101: "ENETUNREACH",
  103: "ECONNABORTED",
  104: "ECONNRESET",
  105: "ENOBUFS",
  106: "EISCONN",
  107: "ENOTCONN",
  110: "ETIMEDOUT",
  111: "ECONNREFUSED",
  113: "EHOSTUNREACH",
  115: "EINPROGRESS",
};

/** `EACCES (permission denied, os error 13)`: the name where known, `strerror` in lower case. */
function errnoText(code: number, describe: (code: number) => string): string {
  const text = describe(code);
  const reason = text.charAt(0).toLowerCase() + text.slice(1);
  const name = Deno.build.os === "linux" || (code <= 34 && code !== 11)
    ? ERRNO_NAMES[code]
    : undefined;
  return name === undefined
    ? `${reason} (os error ${code})`
    : `${name} (${reason}, os error ${code})`;
}

/** The `Deno.errors` class Deno itself throws for errno `code`, with `message`. */
export function errnoError(code: number, message: string): Error {
  switch (code) {
    case ECONNRESET:
      return new Deno.errors.ConnectionReset(message);
    case EPIPE:
      return new Deno.errors.BrokenPipe(message);
    case ECONNABORTED:
      return new Deno.errors.ConnectionAborted(message);
    case ECONNREFUSED:
      return new Deno.errors.ConnectionRefused(message);
    case ENOTCONN:
      return new Deno.errors.NotConnected(message);
    case ETIMEDOUT:
      return new Deno.errors.TimedOut(message);
    case EBADF:
      return new Deno.errors.BadResource(message);
    case EADDRINUSE:
      return new Deno.errors.AddrInUse(message);
    case EADDRNOTAVAIL:
      return new Deno.errors.AddrNotAvailable(message);
    case EACCES:
    case 1: // EPERM
      return new Deno.errors.PermissionDenied(message);
    default:
      return new Error(message);
  }
}

let lastLength = -1;
let lastSize = 0n;

/**
 * `length` as the bigint a `usize` argument takes. Reads and writes of one
 * length tend to follow each other, so the last one is kept: most calls
 * allocate nothing.
 */
export function sizeArgument(length: number): bigint {
  if (length !== lastLength) {
    lastLength = length;
    lastSize = BigInt(length);
  }
  return lastSize;
}
