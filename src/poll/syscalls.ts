/**
 * The libc calls of the epoll backend, through Deno's FFI: epoll itself,
 * `accept4`, `recv`, `send`, `shutdown`, `close`, and an `eventfd` to wake a
 * blocked wait. Linux only (x86_64 and aarch64, the systems Deno runs on);
 * opened once, on first use.
 *
 * @module
 */

// ssize_t results are declared i32: every length here is below 2^31, -1 stays -1,
// and a number (not number | bigint) keeps the calls on V8's fast path.
const SYMBOLS = {
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
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  dup: { parameters: ["i32"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

/**
 * The opened symbols. Lengths (`usize`) are bigints: a number there would
 * make V8 throw away the optimised code of every caller ("not a BigInt").
 */
export type IoSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

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

/** Linux numbers, the same on x86_64 and aarch64. */
export const EPOLLIN = 0x001;
/** Writable. */
export const EPOLLOUT = 0x004;
/** An error is pending on the socket (the next `recv` or `send` reports it). */
export const EPOLLERR = 0x008;
/** Both directions are shut down. */
export const EPOLLHUP = 0x010;
/** `epoll_ctl` operations. */
export const EPOLL_CTL_ADD = 1;
/** Remove a descriptor. */
export const EPOLL_CTL_DEL = 2;
/** Change the events of a descriptor. */
export const EPOLL_CTL_MOD = 3;
/** Close-on-exec, for `epoll_create1`, `eventfd` and `accept4`. */
export const O_CLOEXEC = 0x80000;
/** Non-blocking, for `eventfd` and `accept4`. */
export const O_NONBLOCK = 0x800;
/** `send` flag: a closed peer gives EPIPE, not a SIGPIPE that kills the process. */
export const MSG_NOSIGNAL = 0x4000;
/** `shutdown` of the sending direction. */
export const SHUT_WR = 1;

/** errno values the backend tells apart. */
export const EINTR = 4;
/** Nothing to read, or no room to write, now. */
export const EAGAIN = 11;
/** The peer reset the connection. */
export const ECONNRESET = 104;
/** The connection was aborted before `accept` took it. */
export const ECONNABORTED = 103;

/**
 * Bytes per `struct epoll_event`: packed (12) on x86_64, naturally aligned
 * (16) elsewhere; the 64-bit `data` field follows the 32-bit `events`.
 */
export const EPOLL_EVENT_SIZE = Deno.build.arch === "x86_64" ? 12 : 16;
/** Where `data` starts in a `struct epoll_event`. */
export const EPOLL_DATA_OFFSET = Deno.build.arch === "x86_64" ? 4 : 8;

/** The opened library. */
export interface IoLibc {
  /** The FFI symbols. */
  symbols: IoSymbols;
  /** The calling thread's `errno` right after a failed call. */
  errno(): number;
  /** An error for errno `code`, of the class Deno uses for it, naming `call`. */
  error(code: number, call: string): Error;
}

let cached: IoLibc | string | undefined;

/**
 * Opens the library once; returns it, or a sentence saying why the epoll
 * backend cannot run here (another system, or no `--allow-ffi`).
 */
export function loadIoLibc(): IoLibc | string {
  return cached ??= open();
}

function open(): IoLibc | string {
  if (Deno.build.os !== "linux") return `epoll is Linux only (this is ${Deno.build.os})`;
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return "FFI is not allowed: run with --allow-ffi (or -A)";
  }
  let library;
  try {
    library = Deno.dlopen("libc.so.6", SYMBOLS);
  } catch (error) {
    return `cannot open libc.so.6: ${(error as Error).message}`;
  }
  const { symbols } = library;
  // errno lives at a fixed address per thread; the calls that read it run on this one.
  const where = symbols.__errno_location();
  const errnoView = where === null ? null : new Deno.UnsafePointerView(where);
  return {
    symbols,
    errno: () => errnoView?.getInt32() ?? 0,
    error(code: number, call: string): Error {
      const text = symbols.strerror(code);
      const description = text === null
        ? `errno ${code}`
        : new Deno.UnsafePointerView(text).getCString();
      return errorForErrno(code, `${description} (os error ${code}) in ${call}`);
    },
  };
}

/** The `Deno.errors` class Deno itself throws for `code`, so callers can tell faults apart. */
function errorForErrno(code: number, message: string): Error {
  switch (code) {
    case ECONNRESET:
      return new Deno.errors.ConnectionReset(message);
    case 32: // EPIPE
      return new Deno.errors.BrokenPipe(message);
    case ECONNABORTED:
      return new Deno.errors.ConnectionAborted(message);
    case 107: // ENOTCONN
      return new Deno.errors.NotConnected(message);
    case 110: // ETIMEDOUT
      return new Deno.errors.TimedOut(message);
    case 9: // EBADF
      return new Deno.errors.BadResource(message);
    default:
      return new Error(message);
  }
}
