/**
 * Listening on a Unix domain socket (stream) with `Deno.listen`: what is
 * at the path first, and the socket file at the end.
 *
 * A file that is not a socket is never touched. A socket nothing listens on
 * (connecting is refused: a server that crashed left it) is replaced; one
 * something listens on is refused as an address in use. Deno removes the
 * file when the listener is closed; {@linkcode removeOwnSocket} makes sure
 * of it, and removes it only while it is still the one this listener bound.
 *
 * @module
 */

import { isLibc, loadLibc } from "../libc/_libc.ts";
import { tcpLogger } from "../core/_log.ts";

/** The socket file a listener bound, told apart from a later one at the same path. */
export interface UnixSocketFile {
  /** Its path. */
  readonly path: string;
  /** Its inode and device once bound, or `null` when they could not be read. */
  readonly id: { ino: number | null; dev: number } | null;
}

/**
 * `Deno.listen` on the Unix socket `path`, after making room for it: a
 * stale socket is removed, a live one or a file of another kind refused.
 *
 * @throws {Deno.errors.AddrInUse} when a server listens on `path`.
 * @throws {Deno.errors.AlreadyExists} when something that is not a socket is there.
 * @throws {Deno.errors.PermissionDenied} (and the other errors of a bind) naming the path.
 */
export function listenUnix(path: string): { listener: Deno.UnixListener; file: UnixSocketFile } {
  makeRoom(path);
  let listener: Deno.UnixListener;
  try {
    listener = Deno.listen({ transport: "unix", path });
  } catch (error) {
    throw explainUnixError(error, path);
  }
  let id: UnixSocketFile["id"] = null;
  try {
    const { ino, dev } = Deno.lstatSync(path);
    id = { ino, dev };
  } catch {
    // Not readable: it is then removed by Deno alone.
  }
  return { listener, file: { path, id } };
}

/**
 * Removes a stale socket at `path`; refuses a live one, or a file that is
 * not a socket. Whether something listens is asked by connecting to it
 * through libc without blocking (`serveTcp` opens its socket synchronously);
 * without FFI, it is read from Linux's `/proc/net/unix` (the listening
 * sockets and the paths they were bound to, as they were written); where
 * neither can tell, a socket file found there is refused, not guessed stale.
 */
function makeRoom(path: string): void {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw explainUnixError(error, path);
  }
  if (!info.isSocket) {
    throw new Deno.errors.AlreadyExists(
      `Cannot listen on unix socket ${path}: the path exists and is not a socket; ` +
        "remove it yourself or choose another path",
    );
  }
  const probed = probeUnixSocket(path);
  if (probed === "live") {
    throw new Deno.errors.AddrInUse(
      `Cannot listen on unix socket ${path}: the address is already in use (a server ` +
        "listens there); stop it or choose another path",
    );
  }
  const listening = probed === "stale" ? new Set<string>() : listeningUnixPaths();
  if (listening === null) {
    throw new Deno.errors.AddrInUse(
      `Cannot listen on unix socket ${path}: a socket file is there and whether a server ` +
        "listens on it cannot be told (no /proc/net/unix); remove it if none does",
    );
  }
  if (listening.has(path) || listening.has(absolute(path))) {
    throw new Deno.errors.AddrInUse(
      `Cannot listen on unix socket ${path}: the address is already in use (a server ` +
        "listens there); stop it or choose another path",
    );
  }
  // Nothing listens: a server that ended without removing it (a crash, a SIGKILL) left it.
  tcpLogger.info("Replacing the stale socket {path}: nothing listens on it", { path });
  try {
    Deno.removeSync(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw explainUnixError(error, path);
  }
}

/** `AF_UNIX`, `SOCK_NONBLOCK`, and the errno values a probe tells apart (Linux). */
const AF_UNIX = 1;
const SOCK_NONBLOCK = 0o4000;
const ECONNREFUSED = 111;
const EAGAIN = 11;

/**
 * Whether a server listens on the socket file at `path`, asked the way a
 * client would: a non-blocking `connect` (through libc, so it is
 * synchronous), refused when nothing listens. Unlike the table below, this
 * follows the path as the kernel resolves it (relative paths, symlinks,
 * other spellings). `null` where it cannot tell (no FFI, an other error).
 */
function probeUnixSocket(path: string): "live" | "stale" | null {
  const libc = loadLibc();
  if (!isLibc(libc)) return null;
  const bytes = new TextEncoder().encode(path);
  if (bytes.length >= 108) return null; // longer than sockaddr_un holds
  const address = new Uint8Array(110);
  new DataView(address.buffer).setUint16(0, AF_UNIX, true);
  address.set(bytes, 2);
  const { symbols } = libc;
  const fd = symbols.socket(AF_UNIX, libc.constants.SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return null;
  try {
    if (symbols.connect(fd, address, 2 + bytes.length + 1) === 0) return "live";
    const code = libc.errno();
    if (code === ECONNREFUSED) return "stale";
    if (code === EAGAIN) return "live"; // its backlog is full: it listens
    return null;
  } finally {
    symbols.close(fd);
  }
}

/** The flag of a listening socket in `/proc/net/unix` (`__SO_ACCEPTCON`). */
const ACCEPTING = 0x10000;

/**
 * The paths of the listening Unix stream sockets, as they were bound (a
 * relative path stays relative), or `null` where Linux's table cannot be read.
 */
function listeningUnixPaths(): Set<string> | null {
  let table: string;
  try {
    table = Deno.readTextFileSync("/proc/net/unix");
  } catch {
    return null;
  }
  const paths = new Set<string>();
  // Num RefCount Protocol Flags Type St Inode Path (the path may hold spaces).
  for (const line of table.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 8) continue;
    if ((parseInt(fields[3], 16) & ACCEPTING) === 0 || fields[4] !== "0001") continue;
    paths.add(line.trim().split(/\s+/).slice(7).join(" "));
  }
  return paths;
}

function absolute(path: string): string {
  if (path.startsWith("/")) return path;
  try {
    return `${Deno.cwd()}/${path.replace(/^\.\//, "")}`;
  } catch {
    return path;
  }
}

/** Removes the socket file `file` names, if it is still the one bound (Deno may have done it). */
export function removeOwnSocket(file: UnixSocketFile): void {
  const { path, id } = file;
  if (id === null) return;
  try {
    const now = Deno.lstatSync(path);
    if (now.isSocket && now.ino === id.ino && now.dev === id.dev) Deno.removeSync(path);
  } catch {
    // Gone already (Deno removes it when the listener is dropped), or not ours to see.
  }
}

/** `error` from binding or probing `path`, with a message that names it and says what to do. */
function explainUnixError(error: unknown, path: string): unknown {
  const reason = error instanceof Error ? error.message : String(error);
  if (error instanceof Deno.errors.AddrInUse) {
    return new Deno.errors.AddrInUse(
      `Cannot listen on unix socket ${path}: the address is already in use; ` +
        "stop the server there or choose another path",
      { cause: error },
    );
  }
  if (error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable) {
    const Kind = error.constructor as ErrorConstructor;
    return new Kind(
      `Cannot listen on unix socket ${path}: permission denied (${reason}); ` +
        "choose a path in a directory you may write to, and run with --allow-read and --allow-write",
      { cause: error },
    );
  }
  if (error instanceof Deno.errors.NotFound) {
    return new Deno.errors.NotFound(
      `Cannot listen on unix socket ${path}: its directory does not exist; create it first`,
      { cause: error },
    );
  }
  if (error instanceof Error && /too long|InvalidInput|path must be shorter/i.test(reason)) {
    return new RangeError(
      `Cannot listen on unix socket ${path}: the path is too long (${reason}); ` +
        "use a path of at most 107 bytes",
      { cause: error },
    );
  }
  return error;
}
