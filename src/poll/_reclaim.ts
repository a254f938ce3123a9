/**
 * Closing the descriptors of a poller whose isolate is gone.
 *
 * A worker's sockets on the epoll backend are descriptors of the whole
 * process, opened through libc: when the worker dies (an uncaught error ends
 * its event loop), nothing of it is left to close them, and Deno cannot, as
 * it never knew them. A listener left open that way stays in its port's
 * `reusePort` group, and the kernel goes on handing it a share of the new
 * connections, which nobody accepts.
 *
 * Every descriptor such a worker held open is in its poller's epoll set:
 * listeners, connections, UDP sockets, a socket still connecting, the wake
 * `eventfd`. Linux lists that set in `/proc/self/fdinfo/<epoll fd>`
 * (`tfd: N ... ino: I`), so the descriptors can be found and closed from
 * the thread that outlives the worker. The acceptor's reserve descriptors
 * are duplicates of the epoll descriptor itself (see `_epoll_acceptor.ts`),
 * found as the other epoll descriptors whose set shows the poller's tag
 * (below).
 *
 * A descriptor is closed only when its inode is still the one the epoll set
 * names, so a number the process has given to another socket since is never
 * touched. (Nobody else closes a dead worker's descriptors, so none of its
 * numbers can have been given away: the check is a safeguard.) The epoll
 * descriptor itself must be the dead poller's: the pool learns it from the
 * worker whenever its poller is made or goes (`observePoller`), with the
 * poller's random tag, which its set shows in the wake `eventfd`'s entry
 * (`data:`). A worker may close its poller and die before the pool hears of
 * it, and the number may then hold another poller's instance (inodes do
 * not tell: every epoll and `eventfd` descriptor has the same one): without
 * the tag in its set, nothing is closed. Linux only, with read access to
 * `/proc/self`.
 *
 * @module
 */

import type { EpollLibc } from "./_poller.ts";

/** One entry of an epoll set, as `/proc/self/fdinfo` shows it. */
interface Watched {
  fd: number;
  /** The registration's 64-bit `data`. */
  data: bigint;
  inode: bigint;
}

/** What {@linkcode reclaimPollerDescriptors} closed. */
export interface Reclaimed {
  /** Descriptors of the epoll set closed (sockets and the wake `eventfd`). */
  watched: number;
  /** Epoll descriptors closed: the instance and its duplicates. */
  epoll: number;
}

/**
 * Closes the epoll instance `epfd` of a poller that can no longer run, and
 * every descriptor in its set, waking a wait blocked on it first. Returns
 * `null`, and closes nothing, when `epfd` is not an epoll instance whose set
 * shows the poller's `tag` (`Poller.tag`): the poller was closed, and the
 * number is free or another's.
 *
 * @throws {Error} when `/proc/self` cannot be read (no read permission, not Linux).
 */
export function reclaimPollerDescriptors(
  libc: EpollLibc,
  epfd: number,
  tag: number,
): Reclaimed | null {
  if (link(epfd) !== "anon_inode:[eventpoll]") return null;
  const watched = watchedBy(epfd);
  const tagged = BigInt(tag) << 32n;
  const showsTag = (set: Watched[]) =>
    set.some((entry) => entry.data === (tagged | BigInt(entry.fd)));
  if (!showsTag(watched)) return null;
  // Duplicates of the instance list the same set, the tagged wake entry with it.
  const instances = [epfd];
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    const fd = Number(entry.name);
    if (fd === epfd || link(fd) !== "anon_inode:[eventpoll]") continue;
    if (showsTag(watchedBy(fd))) instances.push(fd);
  }
  const alive = watched.filter((entry) => inodeOf(entry.fd) === entry.inode);
  // A wait blocked on the instance would otherwise sleep for good on another thread.
  const one = new BigUint64Array([1n]);
  for (const { fd } of alive) {
    if (link(fd) === "anon_inode:[eventfd]") libc.linux.write(fd, new Uint8Array(one.buffer), 8n);
  }
  for (const { fd } of alive) libc.symbols.close(fd);
  for (const fd of instances) libc.symbols.close(fd);
  return { watched: alive.length, epoll: instances.length };
}

/** The entries of the epoll set on `fd`. */
function watchedBy(fd: number): Watched[] {
  const info = fdinfo(fd);
  const entries: Watched[] = [];
  for (
    const match of info.matchAll(/^tfd:\s*(\d+)\s.*\bdata:\s*([0-9a-f]+)\s.*\bino:([0-9a-f]+)/gm)
  ) {
    entries.push({
      fd: Number(match[1]),
      data: BigInt(`0x${match[2]}`),
      inode: BigInt(`0x${match[3]}`),
    });
  }
  return entries;
}

/** The inode of the file on `fd` now, or `-1n` when `fd` is not open. */
function inodeOf(fd: number): bigint {
  try {
    return BigInt(Deno.statSync(`/proc/self/fd/${fd}`).ino ?? -1);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return -1n;
    throw error;
  }
}

function fdinfo(fd: number): string {
  try {
    return Deno.readTextFileSync(`/proc/self/fdinfo/${fd}`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "";
    throw error;
  }
}

function link(fd: number): string {
  try {
    return Deno.readLinkSync(`/proc/self/fd/${fd}`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "";
    throw error;
  }
}
