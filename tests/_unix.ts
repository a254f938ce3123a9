/** Helpers of the Unix socket tests. */

import { moduleTempDir } from "./_temp_dirs.ts";

/** Whether something (a file, a socket) is at `path`. */
export function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** A path for a Unix socket in a new temporary directory, removed when the test module ends. */
export function tempSocketPath(): string {
  return `${moduleTempDir("echo-unix-")}/echo.sock`;
}
