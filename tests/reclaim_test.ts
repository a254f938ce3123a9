/**
 * Reclaiming a dead poller's descriptors (poll/_reclaim.ts) on real
 * descriptors: it closes the poller's epoll set only while the number it
 * was told still holds that poller, never another that took the number;
 * and the wait for the worker's thread to end, which comes first.
 */

import { assert, assertEquals } from "@std/assert";
import { type LinuxLibc, loadLibc } from "../src/libc/_libc.ts";
import { EPOLLIN } from "../src/libc/_constants.ts";
import { Poller } from "../src/poll/_poller.ts";
import { isolateThread, reclaimPollerDescriptors, whenThreadEnds } from "../src/poll/_reclaim.ts";

const libc = loadLibc() as LinuxLibc;

/** Whether `fd` is open in this process. */
function isOpen(fd: number): boolean {
  try {
    Deno.readLinkSync(`/proc/self/fd/${fd}`);
    return true;
  } catch {
    return false;
  }
}

/** A UDP socket opened through libc, registered with `poller` (never readable: nothing sends). */
function watchedSocket(poller: Poller): number {
  const fd = libc.symbols.socket(libc.constants.AF_INET, libc.constants.SOCK_DGRAM, 0);
  assert(fd >= 0, "socket() failed");
  poller.add(fd, { onEvents() {}, onPollerError() {} }, EPOLLIN);
  return fd;
}

Deno.test("reclaim closes a poller's set, its eventfd, its instance and its duplicates, given its tag", async () => {
  // A poller whose wait never returns, as a dead worker's: nothing of it runs again to use or
  // close a descriptor the reclaim closed.
  const stuck = {
    ...libc,
    linux: {
      ...libc.linux,
      epoll_wait: () => 0,
      epoll_wait_blocking: () => new Promise<number>(() => {}),
    },
  };
  const poller = new Poller(stuck);
  const socket = watchedSocket(poller);
  const epfd = poller.fd;
  // A duplicate of the instance, as the acceptor's reserve descriptors are.
  const reserve = libc.symbols.dup(epfd);
  // A live poller beside it, whose instance and socket are not the dead one's.
  const other = new Poller(libc);
  const otherSocket = watchedSocket(other);
  try {
    const reclaimed = reclaimPollerDescriptors(libc, epfd, poller.tag);
    assertEquals(reclaimed, { watched: 2, epoll: 2 }); // the socket and the wake eventfd; 2 instances
    assert(!isOpen(socket) && !isOpen(epfd) && !isOpen(reserve));
    assert(isOpen(other.fd) && isOpen(otherSocket), "the live poller's descriptors were closed");
  } finally {
    other.remove(otherSocket);
    libc.symbols.close(otherSocket);
    await other.whenIdle();
    other.closeIfIdle();
  }
});

Deno.test("reclaim closes nothing when the number now holds another poller", async () => {
  const first = new Poller(libc);
  const { fd: number, tag } = first;
  assert(first.closeIfIdle());
  // The closed poller's number goes to the next descriptor opened: another poller's instance.
  const second = new Poller(libc);
  assertEquals(second.fd, number, "the kernel did not give the number again");
  const socket = watchedSocket(second);
  try {
    assertEquals(reclaimPollerDescriptors(libc, number, tag), null);
    assert(isOpen(second.fd) && isOpen(socket), "the other poller's descriptors were closed");
    // The other poller still works: its socket is removed and closed the usual way.
    second.remove(socket);
    libc.symbols.close(socket);
    await second.whenIdle();
  } finally {
    second.closeIfIdle();
  }
});

Deno.test("reclaim closes nothing for a descriptor that is not an epoll instance", () => {
  const poller = new Poller(libc);
  const socket = libc.symbols.socket(libc.constants.AF_INET, libc.constants.SOCK_DGRAM, 0);
  try {
    assertEquals(reclaimPollerDescriptors(libc, socket, poller.tag), null);
    assert(isOpen(socket));
  } finally {
    libc.symbols.close(socket);
    poller.closeIfIdle();
  }
});

Deno.test("whenThreadEnds waits for a worker's thread, which terminate() leaves running its microtasks", async () => {
  const main = isolateThread();
  if (main === null) throw new Error("cannot read /proc/thread-self");
  const worker = new Worker(new URL("./fixtures/stubborn_thread.ts", import.meta.url), {
    type: "module",
  });
  const inbox: { thread?: ReturnType<typeof isolateThread>; spinning?: true }[] = [];
  let arrived = Promise.withResolvers<void>();
  worker.onmessage = ({ data }) => {
    inbox.push(data);
    arrived.resolve();
  };
  const next = async () => {
    while (inbox.length === 0) {
      await arrived.promise;
      arrived = Promise.withResolvers();
    }
    return inbox.shift()!;
  };
  try {
    const { thread } = await next();
    if (!thread || thread.tid === main.tid) {
      throw new Error(`not the worker's thread: ${JSON.stringify(thread)}`);
    }
    assertEquals(await whenThreadEnds(thread, 20), false, "the worker's thread ended by itself");
    worker.postMessage({ spinMs: 800 });
    await next();
    const ended = performance.now();
    worker.terminate();
    // What makes the wait necessary: ended, it still runs (and could still use descriptors).
    assertEquals(await whenThreadEnds(thread, 200), false, "terminate() stopped the microtasks");
    assertEquals(await whenThreadEnds(thread, 10_000), true, "the thread never ended");
    assert(performance.now() - ended >= 500, "the thread ended before its microtasks did");
  } finally {
    worker.terminate();
  }
  // The calling thread runs; a thread with its id but another start time is another, ended.
  assertEquals(await whenThreadEnds(main, 0), false);
  assertEquals(await whenThreadEnds({ ...main, startTime: "1" }, 0), true);
});
