/**
 * The libc calls the socket-option layer needs, through Deno's FFI
 * (`Deno.dlopen`, which needs `--allow-ffi`). Opened once, on first use.
 *
 * @module
 */

import { type PlatformConstants, platformConstants } from "./constants.ts";

const SYMBOLS = {
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;

/** The opened library, with the system's constants. */
export interface Libc {
  /** The system's option numbers and `sockaddr` layout. */
  constants: PlatformConstants;
  /** The FFI symbols. */
  symbols: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
  /** The calling thread's `errno` right after a failed call. */
  errno(): number;
  /** `strerror(errno)`. */
  describe(errno: number): string;
}

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

function open(): Libc | LibcUnavailable {
  const constants = platformConstants();
  if (constants === null) {
    return {
      reason: `socket options through FFI are not supported on ${Deno.build.os}`,
      permission: false,
    };
  }
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return { reason: "FFI is not allowed: run with --allow-ffi (or -A)", permission: true };
  }
  let library;
  try {
    library = Deno.dlopen(
      constants.libc,
      {
        ...SYMBOLS,
        [constants.errnoLocation]: { parameters: [], result: "pointer" },
      } as typeof SYMBOLS & Record<string, { parameters: []; result: "pointer" }>,
    );
  } catch (error) {
    return {
      reason: `cannot open ${constants.libc}: ${(error as Error).message}`,
      permission: false,
    };
  }
  const errnoLocation = library.symbols[constants.errnoLocation] as () => Deno.PointerValue;
  const { strerror } = library.symbols;
  return {
    constants,
    symbols: library.symbols,
    errno(): number {
      const pointer = errnoLocation();
      return pointer === null ? 0 : new Deno.UnsafePointerView(pointer).getInt32();
    },
    describe(errno: number): string {
      const text = strerror(errno);
      return text === null ? `errno ${errno}` : new Deno.UnsafePointerView(text).getCString();
    },
  };
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
  const message = `Cannot ${action}: ${libc.reason}.`;
  throw libc.permission
    ? new Deno.errors.NotCapable(message)
    : new Deno.errors.NotSupported(message);
}
