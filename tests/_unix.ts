/** Helpers of the Unix socket tests. */

/** Whether something (a file, a socket) is at `path`. */
export function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** A path for a Unix socket in a new temporary directory. */
export function tempSocketPath(): string {
  return `${Deno.makeTempDirSync({ prefix: "echo-unix-" })}/echo.sock`;
}
