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
 * Only once the worker's thread has ended: `Worker.terminate()` does not
 * stop JavaScript that never goes back to its event loop (a loop of
 * microtasks, as a poller's turns under load are), so a worker ended a
 * moment ago may still read, write or close its descriptors. Were they
 * closed under it, their numbers could go to another worker's new sockets
 * and be written or closed by the one ending. So the worker tells its
 * thread ({@linkcode isolateThread}), and the pool waits for it to end
 * ({@linkcode whenThreadEnds}) before it reclaims.
 *
 * @module
 */

import type { EpollLibc } from "./_poller.ts";
import { monotonicMs } from "../libc/_clock.ts";

/**
 * An OS thread of this process, as `/proc` shows it: its id, and when it
 * started (in clock ticks since boot), so that a later thread given the
 * same id is not taken for it.
 */
export interface IsolateThread {
  tid: number;
  startTime: string;
}

/** This isolate's thread, read once: `undefined` until then. */
let thisThread: IsolateThread | null | undefined;

/**
 * The thread this isolate runs on (each worker has its own), or `null`
 * where `/proc/thread-self` cannot be read (not Linux, no read permission).
 */
export function isolateThread(): IsolateThread | null {
  if (thisThread === undefined) {
    try {
      thisThread = threadOf(Deno.readTextFileSync("/proc/thread-self/stat"));
    } catch {
      thisThread = null;
    }
  }
  return thisThread;
}

/**
 * Resolves `true` once `thread` has ended (no task of this process has its
 * id and start time, or it is dead), `false` if it still runs after
 * `timeoutMs`. Looks again after 1 ms, then after twice as long each time,
 * up to 50 ms.
 */
export async function whenThreadEnds(thread: IsolateThread, timeoutMs: number): Promise<boolean> {
  const until = monotonicMs() + timeoutMs;
  for (let delay = 1;; delay = Math.min(delay * 2, 50)) {
    if (hasEnded(thread)) return true;
    const left = until - monotonicMs();
    if (left <= 0) return false;
    await new Promise((resolve) => setTimeout(resolve, Math.min(delay, left)));
  }
}

function hasEnded(thread: IsolateThread): boolean {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/self/task/${thread.tid}/stat`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return true;
    throw error;
  }
  const fields = fieldsAfterName(stat);
  // Z, X: exited, not yet reaped.
  return fields[19] !== thread.startTime || fields[0] === "Z" || fields[0] === "X";
}

/** A thread's id and start time, from its `/proc/.../stat` line. */
function threadOf(stat: string): IsolateThread | null {
  const tid = Number.parseInt(stat, 10);
  const startTime = fieldsAfterName(stat)[19];
  return Number.isInteger(tid) && startTime !== undefined ? { tid, startTime } : null;
}

/**
 * The fields of a `/proc/.../stat` line from the third on (state, parent,
 * ...; the start time, the 22nd, at index 19): those after the
 * parenthesised name, which may itself hold spaces and parentheses.
 */
function fieldsAfterName(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

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
