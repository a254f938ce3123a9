/**
 * The poller's own timers: the heap's order and its fire-once rule, and,
 * on a real epoll instance, timers that fire on time while the loop is
 * kept busy (where Deno's run late), with nothing registered, and when
 * scheduled while the wait is blocked.
 */

import { assert, assertEquals, assertThrows } from "@std/assert";
import { type EpollLibc, Poller, waitOnMainThread } from "../src/poll/_poller.ts";
import { PollTimer, TimerHeap } from "../src/poll/_timers.ts";
import { isLibc, loadLibc } from "../src/libc/_libc.ts";
import { EBADF, EPOLLIN, O_CLOEXEC, O_NONBLOCK } from "../src/libc/_constants.ts";
import { FakeLibc } from "./_fake_libc.ts";
import { monotonicMs } from "../src/libc/_clock.ts";

const libc = loadLibc();
const epoll = isLibc(libc) && libc.linux !== null ? libc as EpollLibc : null;

/** Fires what is due at `now`, with errors thrown at the test. */
function fire(heap: TimerHeap, now: number): void {
  heap.fireDue(now, [], (error) => {
    throw error;
  });
}

Deno.test("timer heap: timers scheduled, moved and cancelled at random fire in order of when they are due, each once", () => {
  const heap = new TimerHeap();
  const fired: number[] = [];
  const timers = Array.from({ length: 300 }, (_, i) => new PollTimer(() => fired.push(i)));
  const due = new Map<number, number>();
  // A fixed sequence (a linear congruential one): the same cases every run.
  let seed = 12345;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let step = 0; step < 3000; step++) {
    const i = Math.floor(random() * timers.length);
    if (random() < 0.2) {
      heap.cancel(timers[i]);
      due.delete(i);
    } else {
      const at = Math.floor(random() * 1000);
      heap.schedule(timers[i], at);
      due.set(i, at);
    }
  }
  assertEquals(heap.size, due.size);
  for (let now = 0; now < 1000; now += 50) fire(heap, now);
  fire(heap, 1000);
  assertEquals(heap.size, 0);
  assertEquals(heap.next, Infinity);
  const expected = [...due].sort(([a, x], [b, y]) => x - y || a - b).map(([i]) => i);
  assertEquals(fired.length, expected.length, "a timer fired twice, or a cancelled one fired");
  assertEquals(new Set(fired), new Set(expected));
  // In order of their times (timers due at the same time in any order).
  const times = fired.map((i) => due.get(i)!);
  assertEquals(times, [...times].sort((a, b) => a - b));
  assert(timers.every((timer) => !timer.scheduled));
});

Deno.test({
  name: "poller timers: a time that is not finite is refused, naming it",
  ignore: epoll === null,
  fn() {
    const poller = new Poller(epoll!);
    for (const at of [NaN, Infinity]) {
      assertThrows(
        () => poller.schedule(new PollTimer(() => {}), at),
        RangeError,
        `Cannot schedule a timer at ${at}: it must be a finite time`,
      );
    }
    assert(poller.closeIfIdle());
  },
});

Deno.test("timer heap: a timer scheduled again from a firing waits for the next call; one cancelled by an earlier one does not fire", () => {
  const heap = new TimerHeap();
  const fired: string[] = [];
  const again: PollTimer = new PollTimer(() => {
    fired.push("again");
    heap.schedule(again, 0); // due at once: still not in this call
  });
  const victim = new PollTimer(() => fired.push("victim"));
  const killer = new PollTimer(() => {
    fired.push("killer");
    heap.cancel(victim);
  });
  const moved = new PollTimer(() => fired.push("moved"));
  const mover = new PollTimer(() => {
    fired.push("mover");
    heap.schedule(moved, 50); // taken to fire at 10, moved to 50: fires then, once
  });
  heap.schedule(again, 1);
  heap.schedule(killer, 2);
  heap.schedule(victim, 3);
  heap.schedule(mover, 4);
  heap.schedule(moved, 10);
  fire(heap, 10);
  assertEquals(fired, ["again", "killer", "mover"]);
  assert(again.scheduled && moved.scheduled && !victim.scheduled);
  fire(heap, 10);
  assertEquals(fired, ["again", "killer", "mover", "again"]);
  heap.cancel(again);
  fire(heap, 100);
  assertEquals(fired, ["again", "killer", "mover", "again", "moved"]);
  assertEquals(heap.size, 0);
});

Deno.test({
  name: "poller timers: fire on time while a descriptor that is always ready keeps the loop busy",
  ignore: epoll === null,
  async fn() {
    const poller = new Poller(epoll!);
    // An eventfd whose counter is never read: readable on every wait.
    const fd = epoll!.linux.eventfd(1, O_NONBLOCK | O_CLOEXEC);
    assert(fd >= 0);
    let dispatches = 0;
    poller.add(fd, {
      onEvents() {
        dispatches++;
      },
      onPollerError(error) {
        throw error;
      },
    }, EPOLLIN);
    const lateness: number[] = [];
    try {
      for (let i = 0; i < 10; i++) {
        const fired = Promise.withResolvers<void>();
        const at = monotonicMs() + 30;
        const timer = new PollTimer(() => {
          lateness.push(monotonicMs() - at);
          fired.resolve();
        });
        poller.schedule(timer, at);
        await fired.promise;
      }
    } finally {
      poller.remove(fd);
      epoll!.symbols.close(fd);
      await poller.whenIdle();
      poller.closeIfIdle();
    }
    assert(dispatches > 10_000, `the loop was not busy: ${dispatches} dispatches`);
    const late = lateness.map((ms) => ms.toFixed(2)).join(", ");
    assert(lateness.every((ms) => ms >= 0), `a timer fired early: ${late} ms`);
    // Within a batch of events, microseconds here; the median is asked, so a moment the machine
    // took the core away does not fail the test. Deno's timers, in this loop, run on its turns
    // every 10 ms (TURN_MS): 10 ms late as a rule, 20 at times.
    const median = lateness.toSorted((a, b) => a - b)[lateness.length >> 1];
    assert(median < 3, `late by ${late} ms`);
    assert(Math.max(...lateness) < 100, `late by ${late} ms`);
  },
});

Deno.test({
  name: "poller timers: run with nothing registered, then the loop ends",
  ignore: epoll === null,
  async fn() {
    const poller = new Poller(epoll!);
    const order: number[] = [];
    const fired = Promise.withResolvers<void>();
    const start = monotonicMs();
    for (const delay of [20, 5, 10]) {
      poller.schedule(
        new PollTimer(() => {
          order.push(delay);
          if (order.length === 3) fired.resolve();
        }),
        start + delay,
      );
    }
    await fired.promise;
    assertEquals(order, [5, 10, 20]);
    assert(monotonicMs() - start >= 20);
    await poller.whenIdle();
    assert(poller.closeIfIdle(), "the loop still ran with nothing left to do");
  },
});

Deno.test({
  name:
    "poller timers: one scheduled while the wait blocks wakes it; cancelling the last ends the loop",
  ignore: epoll === null,
  async fn() {
    const poller = new Poller(epoll!);
    // An eventfd that is never ready: the loop blocks with no timeout of its own.
    const fd = epoll!.linux.eventfd(0, O_NONBLOCK | O_CLOEXEC);
    poller.add(fd, { onEvents() {}, onPollerError() {} }, EPOLLIN);
    try {
      // Let the wait block on the other thread.
      await new Promise((resolve) => setTimeout(resolve, 20));
      const fired = Promise.withResolvers<number>();
      const at = monotonicMs() + 10;
      poller.schedule(new PollTimer(() => fired.resolve(monotonicMs() - at)), at);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = await Promise.race([
        fired.promise,
        new Promise<number>((resolve) => timer = setTimeout(() => resolve(Infinity), 2000)),
      ]);
      clearTimeout(timer);
      assert(late >= 0 && late < 1000, `fired ${late} ms late: the blocked wait was not woken`);
    } finally {
      poller.remove(fd);
      epoll!.symbols.close(fd);
    }
    // A timer far off, then cancelled: the loop, blocked until it, ends at once.
    const far = new PollTimer(() => {});
    poller.schedule(far, monotonicMs() + 60_000);
    await new Promise((resolve) => setTimeout(resolve, 20));
    poller.cancel(far);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ended = await Promise.race([
      poller.whenIdle().then(() => true),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), 2000)),
    ]);
    clearTimeout(timer);
    assert(ended, "the loop waited for a cancelled timer");
    assert(poller.closeIfIdle());
  },
});

Deno.test("poller timers: a poller that fails hands its timers to Deno's; a timer cancelled after does not fire", async () => {
  const libc = new FakeLibc();
  const poller = new Poller(libc);
  const fired: string[] = [];
  const kept = new PollTimer(() => fired.push("kept"));
  const cancelled = new PollTimer(() => fired.push("cancelled"));
  const start = monotonicMs();
  poller.schedule(kept, start + 30);
  poller.schedule(cancelled, start + 30);
  // Nothing is ready; the blocking wait fails; asked again here, it says EBADF.
  libc.waits.push({ events: [] }, { fail: EBADF });
  libc.blockingWaits.push({ fail: EBADF });
  await poller.whenIdle();
  poller.cancel(cancelled);
  await new Promise((resolve) => setTimeout(resolve, 60));
  assertEquals(fired, ["kept"]);
  assert(!kept.scheduled && !cancelled.scheduled);
});

Deno.test({
  name:
    "poller timers: an idle wait ends at the timer to the sub-millisecond, through epoll_pwait2",
  ignore: epoll === null || epoll.linux.epoll_pwait2_blocking === null,
  async fn() {
    const poller = new Poller(epoll!);
    const lateness: number[] = [];
    for (let i = 0; i < 10; i++) {
      const fired = Promise.withResolvers<void>();
      // 10.1 ms: epoll_wait's whole milliseconds would wait 11, then the hand-back.
      const at = monotonicMs() + 10.1;
      poller.schedule(
        new PollTimer(() => {
          lateness.push(monotonicMs() - at);
          fired.resolve();
        }),
        at,
      );
      await fired.promise;
    }
    await poller.whenIdle();
    assert(poller.closeIfIdle());
    const late = lateness.map((ms) => ms.toFixed(3)).join(", ");
    assert(lateness.every((ms) => ms >= 0), `a timer fired early: ${late} ms`);
    // The hand-back from the blocking thread: 0.2-0.4 ms here; whole milliseconds add 0.9.
    const median = lateness.toSorted((a, b) => a - b)[lateness.length >> 1];
    assert(median < 0.75, `late by ${late} ms`);
  },
});

Deno.test({
  name: "poller timers: a failing epoll_pwait2 (a kernel before 5.11) is given up for epoll_wait",
  ignore: epoll === null,
  async fn() {
    let calls = 0;
    const linux = {
      ...epoll!.linux,
      epoll_pwait2_blocking: () => {
        calls++;
        return Promise.resolve(-1); // ENOSYS, on the other thread
      },
    } as unknown as EpollLibc["linux"];
    const poller = new Poller(Object.create(epoll!, { linux: { value: linux } }));
    const order: number[] = [];
    const done = Promise.withResolvers<void>();
    const start = monotonicMs();
    for (const delay of [5, 15]) {
      poller.schedule(
        new PollTimer(() => {
          order.push(delay);
          if (order.length === 2) done.resolve();
        }),
        start + delay,
      );
    }
    await done.promise;
    assertEquals(order, [5, 15]);
    assertEquals(calls, 1, "epoll_pwait2 was tried again after it failed");
    assert(monotonicMs() - start >= 15);
    await poller.whenIdle();
    assert(poller.closeIfIdle());
  },
});

Deno.test("poller timers: a timer handed to Deno's, scheduled on a new poller that fails too, fires once, at its new time", async () => {
  const failing = () => {
    const libc = new FakeLibc();
    const poller = new Poller(libc);
    return {
      poller,
      fail: () => {
        libc.waits.push({ events: [] }, { fail: EBADF });
        libc.blockingWaits.push({ fail: EBADF });
      },
    };
  };
  const fired: number[] = [];
  const timer = new PollTimer(() => fired.push(monotonicMs()));
  const start = monotonicMs();
  const first = failing();
  first.poller.schedule(timer, start + 20);
  first.fail();
  await first.poller.whenIdle();
  // Handed to Deno's for start + 20; moved to start + 80 on a second poller, which fails too.
  const second = failing();
  second.poller.schedule(timer, start + 80);
  second.fail();
  await second.poller.whenIdle();
  await new Promise((resolve) => setTimeout(resolve, 120));
  assertEquals(fired.length, 1, `fired at ${fired.map((at) => (at - start).toFixed(1))} ms`);
  assert(fired[0] - start >= 79, `fired at ${(fired[0] - start).toFixed(1)} ms, not at 80`);
});

Deno.test({
  name:
    "poller timers: with waits on the main thread, a busy loop sleeps here until a timer due within a millisecond",
  ignore: epoll === null || epoll.linux.epoll_pwait2 === null,
  async fn() {
    let blocking = 0;
    const real = epoll!.linux;
    const linux = {
      ...real,
      epoll_wait_blocking: (...args: Parameters<typeof real.epoll_wait_blocking>) => {
        blocking++;
        return real.epoll_wait_blocking(...args);
      },
      epoll_pwait2_blocking: (
        ...args: Parameters<NonNullable<typeof real.epoll_pwait2_blocking>>
      ) => {
        blocking++;
        return real.epoll_pwait2_blocking!(...args);
      },
    } as EpollLibc["linux"];
    const poller = new Poller(Object.create(epoll!, { linux: { value: linux } }));
    const fd = real.eventfd(0, O_NONBLOCK | O_CLOEXEC);
    const counter = new BigUint64Array([1n]);
    poller.add(fd, {
      onEvents: () => void real.read(fd, new BigUint64Array(1), 8n),
      onPollerError(error) {
        throw error;
      },
    }, EPOLLIN);
    waitOnMainThread(true);
    try {
      // Each round: an event (the loop is busy), then a timer 0.5 ms on, which sends the next.
      const done = Promise.withResolvers<void>();
      let rounds = 0;
      let at = 0;
      const lateness: number[] = [];
      const timer: PollTimer = new PollTimer(() => {
        lateness.push(monotonicMs() - at);
        if (++rounds === 50) return done.resolve();
        round();
      });
      const round = () => {
        real.write(fd, counter, 8n);
        at = monotonicMs() + 0.5;
        poller.schedule(timer, at);
      };
      round();
      await done.promise;
      // 50 rounds in about 25 ms: the loop's turns every 10 ms go to the blocking thread, and
      // the first wait; a wait there for each timer would make 50.
      assert(blocking <= 10, `${blocking} waits on the blocking thread for 50 timers`);
      const median = lateness.toSorted((a, b) => a - b)[lateness.length >> 1];
      assert(median < 0.2, `late by ${lateness.map((ms) => ms.toFixed(3)).join(", ")} ms`);
    } finally {
      waitOnMainThread(false);
      poller.remove(fd);
      epoll!.symbols.close(fd);
      await poller.whenIdle();
      poller.closeIfIdle();
    }
  },
});

Deno.test("poller timers: a wait here that slept until a timer leaves the loop busy: the next wait sleeps here too", async () => {
  // The fake's epoll_pwait2 on this thread answers at once what is ready: nothing after the
  // first event, as for a client that sent its request and waits for the answer.
  const libc = new FakeLibc();
  let pwaits = 0;
  (libc.linux as { epoll_pwait2: unknown }).epoll_pwait2 = (fd: number, events: Uint8Array) => {
    pwaits++;
    return libc.linux.epoll_wait(fd, events, 256, 0);
  };
  const poller = new Poller(libc);
  libc.socket(7);
  poller.add(7, { onEvents() {}, onPollerError() {} }, EPOLLIN);
  libc.waits.push({ events: [[7, EPOLLIN]] }); // the loop is busy: its next wait is here
  waitOnMainThread(true);
  try {
    const done = Promise.withResolvers<void>();
    let rounds = 0;
    let blocking = -1;
    const timer: PollTimer = new PollTimer(() => {
      // (Once the last has fired, the idle loop blocks there: not counted.)
      if (++rounds === 5) return done.resolve(void (blocking = libc.blockingCalls));
      poller.schedule(timer, monotonicMs() + 0.5); // the next request, with no event between
    });
    poller.schedule(timer, monotonicMs() + 0.5);
    await done.promise;
    assert(pwaits > 0, "no wait slept here");
    assertEquals(
      blocking,
      0,
      `a wait went to the blocking thread between two timers (${pwaits} here)`,
    );
  } finally {
    waitOnMainThread(false);
    poller.remove(7);
    await poller.whenIdle();
  }
});
