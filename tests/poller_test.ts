/**
 * The poller and the epoll driver against a fake libc (tests/_fake_libc.ts):
 * the kernel's rare answers, on cue.
 */

import { assert, assertEquals, assertInstanceOf, assertStringIncludes } from "@std/assert";
import { Poller, waitOnMainThread } from "../src/poll/_poller.ts";
import { EpollDriver } from "../src/drivers/_epoll_driver.ts";
import { SocketTransport } from "../src/core/_transport.ts";
import type { Protocol, Transport } from "../src/core/protocol.ts";
import { EpollAcceptor } from "../src/tcp/_epoll_acceptor.ts";
import type { ConnectionSetup } from "../src/sockopt/_setup.ts";
import { EAGAIN, EBADF, ECONNRESET, EINTR, EPOLLIN, EPOLLOUT } from "../src/libc/_constants.ts";
import { FakeLibc } from "./_fake_libc.ts";
import { waitFor } from "./_helpers.ts";

const NOTHING: ConnectionSetup = {
  noDelay: undefined,
  keepAlive: undefined,
  quickAck: false,
  perConnection: [],
};
const PEER: Deno.NetAddr = { transport: "tcp", hostname: "127.0.0.1", port: 40000 };

/** A protocol that records what happens to it; `onData` may act on the transport. */
class Recorder implements Protocol {
  transport!: Transport;
  data = "";
  lost: Error | undefined | "open" = "open";
  events: string[] = [];
  constructor(readonly onData?: (data: string, transport: Transport) => void) {}
  connectionMade(transport: Transport): void {
    this.transport = transport;
  }
  dataReceived(bytes: Uint8Array): void {
    const text = new TextDecoder().decode(bytes);
    this.data += text;
    this.onData?.(text, this.transport);
  }
  pauseWriting(): void {
    this.events.push("pause");
  }
  resumeWriting(): void {
    this.events.push("resume");
  }
  connectionLost(error?: Error): void {
    this.lost = error;
  }
}

/** A poller over `libc`, and a way to run a transport on a fake descriptor. */
function setUp() {
  const libc = new FakeLibc();
  const poller = new Poller(libc);
  const open = (fd: number, protocol: Recorder = new Recorder()) => {
    const socket = libc.socket(fd);
    const transport = new SocketTransport(new EpollDriver(fd, PEER, poller, NOTHING), protocol, {});
    transport.start();
    return { socket, transport, protocol };
  };
  return { libc, poller, open };
}

/** Closes every transport and waits for the poller's loop to end. */
async function tearDown(poller: Poller, transports: SocketTransport[]): Promise<void> {
  for (const transport of transports) transport.abort();
  await poller.whenIdle();
}

Deno.test("poller: a readable event with nothing to read (EAGAIN) delivers nothing and fails nothing", async () => {
  const { libc, poller, open } = setUp();
  const { socket, transport, protocol } = open(10);
  const recorder = protocol;
  libc.waits.push({ events: [[10, EPOLLIN]] }, { events: [[10, EPOLLIN]] });
  libc.kick();
  await waitFor(() => socket.recvCalls === 2, "both spurious events to be handled");
  assertEquals([recorder.data, recorder.lost, transport.lost], ["", "open", false]);
  socket.push("real data");
  libc.kick();
  await waitFor(() => recorder.data === "real data", "the data");
  assertEquals(libc.errno(), EAGAIN);
  await tearDown(poller, [transport]);
});

Deno.test("poller: an interrupted wait (EINTR) waits again and loses nothing", async () => {
  const { libc, poller, open } = setUp();
  const { socket, transport, protocol } = open(10);
  // Nothing is ready; the blocking wait fails; asked again here, it says EINTR; then it waits again.
  libc.waits.push({ events: [] }, { fail: EINTR });
  libc.blockingWaits.push({ fail: EINTR });
  await waitFor(() => libc.blockingCalls === 2, "the second blocking wait");
  socket.push("after the signal");
  libc.kick();
  await waitFor(() => protocol.data === "after the signal", "the data");
  assertEquals(transport.lost, false);
  await tearDown(poller, [transport]);
});

Deno.test("poller: a failed wait (EBADF) fails every connection and the acceptor once, without spinning", async () => {
  const { libc, poller, open } = setUp();
  const a = open(10);
  const b = open(11);
  let ended: Error | undefined;
  const acceptor = new EpollAcceptor(poller, 20, PEER, NOTHING);
  acceptor.start(() => {}, (error) => void (ended = error));
  // Nothing is ready; the blocking wait fails; asked again here, it says EBADF.
  libc.waits.push({ events: [] }, { fail: EBADF });
  libc.blockingWaits.push({ fail: EBADF });
  await waitFor(() => poller.size === 0, "the poller to give up");
  await poller.whenIdle();
  await waitFor(() => a.protocol.lost !== "open" && b.protocol.lost !== "open", "both lost");
  for (const { protocol, socket } of [a, b]) {
    assertInstanceOf(protocol.lost, Deno.errors.BadResource);
    assert(socket.closed, "the descriptor is closed");
  }
  assertInstanceOf(ended, Deno.errors.BadResource);
  assertStringIncludes(ended!.message, "epoll_wait");
  assertEquals(libc.blockingCalls, 1, "a blocking wait after the failure");
  assert(libc.waitCalls <= 3, `epoll_wait called ${libc.waitCalls} times`);
  assertEquals(libc.log.filter((line) => line === "close 10").length, 1);
  assertEquals(poller.size, 0);
});

Deno.test("epoll driver: sends the socket takes a few bytes at a time arrive whole and in order, with water marks", async () => {
  const { libc, poller, open } = setUp();
  const recorder = new Recorder();
  const { socket, transport } = open(10, recorder);
  transport.setWriteBufferLimits({ high: 40, low: 10 });
  socket.room = 7;
  socket.perSend = 3;
  const expected = Array.from({ length: 20 }, (_, i) => `message ${i};`).join("");
  const scratch = new TextEncoder().encode(expected);
  transport.write(scratch.subarray(0, 100));
  transport.write(scratch.subarray(100));
  scratch.fill(0); // ours again: what was queued is a copy
  assertEquals(recorder.events, ["pause"]);
  assertEquals(transport.getWriteBufferSize(), expected.length - 3); // one send of 3 went at once
  // The peer reads a little at a time: the socket has room again, 5 bytes each round.
  while (socket.sent.length < expected.length) {
    socket.room += 5;
    libc.kick();
    const before = socket.sent.length;
    await waitFor(() => socket.sent.length > before, "the next send");
  }
  assertEquals(socket.text(), expected);
  assertEquals(recorder.events, ["pause", "resume"]);
  assertEquals(libc.interest.get(10)! & EPOLLOUT, 0, "no longer watched for room");
  await tearDown(poller, [transport]);
});

Deno.test("poller: a reset in the middle of a batch fails only that connection", async () => {
  const { libc, poller, open } = setUp();
  const a = open(10);
  const b = open(11);
  a.socket.input.push({ errno: ECONNRESET });
  b.socket.push("still here");
  libc.waits.push({ events: [[10, EPOLLIN], [11, EPOLLIN]] });
  libc.kick();
  await waitFor(() => b.protocol.data === "still here", "b's data");
  await waitFor(() => a.protocol.lost !== "open", "a to be lost");
  assertInstanceOf(a.protocol.lost, Deno.errors.ConnectionReset);
  assertEquals([a.transport.lost, b.transport.lost], [true, false]);
  await tearDown(poller, [b.transport]);
});

Deno.test("poller: events of a descriptor closed earlier in the batch never reach the socket that reuses its number", async () => {
  const { libc, poller, open } = setUp();
  let reused: ReturnType<typeof open> | undefined;
  const victim = open(11);
  // fd 10's protocol closes the connection on fd 11, and a new connection gets number 11 at once.
  const closer = open(
    10,
    new Recorder(() => {
      victim.transport.abort();
      reused = open(11);
    }),
  );
  closer.socket.push("close the other");
  victim.socket.push("stale");
  libc.waits.push({ events: [[10, EPOLLIN], [11, EPOLLIN | EPOLLOUT]] });
  libc.kick();
  await waitFor(() => reused !== undefined, "the number to be reused");
  // A later wait: the batch is over.
  const waits = libc.waitCalls;
  libc.kick();
  await waitFor(() => libc.waitCalls > waits, "the next wait");
  assertEquals(reused!.socket.recvCalls, 0, "the new socket was read on the old one's event");
  assertEquals(victim.protocol.data, "", "the closed connection was read");
  assertEquals(libc.log.indexOf("del 11") < libc.log.indexOf("close 11"), true);
  await tearDown(poller, [closer.transport, reused!.transport]);
});

Deno.test("epoll driver: no read follows a callback that lost the connection; its descriptor leaves epoll, then closes, once", async () => {
  const { libc, poller, open } = setUp();
  const { socket, transport } = open(10, new Recorder((_, t) => t.abort()));
  socket.push("first");
  socket.push("second");
  libc.kick();
  await waitFor(() => transport.lost, "the abort");
  await poller.whenIdle(); // nothing registered: the loop has ended, no event is left to come
  assertEquals(socket.recvCalls, 1, "a read after the connection was lost");
  assertEquals(libc.log.filter((line) => line.endsWith(" 10")), ["del 10", "close 10"]);
});

Deno.test("epoll driver: a send that lets a callback lose the connection is followed by no read", async () => {
  const { libc, poller, open } = setUp();
  const recorder = new Recorder();
  recorder.resumeWriting = () => recorder.transport.abort(); // the drain's callback ends it all
  const opened = open(10, recorder);
  const transport = opened.transport;
  transport.setWriteBufferLimits({ high: 10, low: 5 });
  opened.socket.room = 0;
  transport.write(new Uint8Array(20)); // queued: past the high mark
  opened.socket.room = 100;
  opened.socket.push("unread");
  // One event: writable (the flush resumes writing, and the protocol aborts) and readable.
  libc.waits.push({ events: [[10, EPOLLIN | EPOLLOUT]] });
  libc.kick();
  await waitFor(() => opened.transport.lost, "the abort");
  assertEquals(opened.socket.recvCalls, 0, "read after the connection was lost");
  assertEquals(recorder.data, "");
  await poller.whenIdle();
});

Deno.test("poller: a descriptor that is always ready does not starve timers (Deno's event loop turns)", async () => {
  const { libc, poller } = setUp();
  libc.socket(7); // always room to write: EPOLLOUT on every wait
  let calls = 0;
  let timerFiredAt = -1;
  const done = Promise.withResolvers<void>();
  // Without a turn of the event loop the timer never fires; the target then gives up after
  // many calls rather than hang the test.
  poller.add(7, {
    onEvents() {
      calls++;
      if (timerFiredAt >= 0 || calls === 2_000_000) {
        poller.remove(7);
        done.resolve();
      }
    },
    onPollerError: (error) => done.reject(error),
  }, EPOLLOUT);
  setTimeout(() => void (timerFiredAt = calls), 5);
  await done.promise;
  assert(timerFiredAt >= 0, `the timer never fired in ${calls} dispatches`);
  await poller.whenIdle();
});

Deno.test("poller: with a spin, a wait on the main thread looks without sleeping first, then sleeps", async () => {
  const { libc, poller } = setUp();
  const socket = libc.socket(7);
  const calls: number[] = []; // the timeouts of epoll_wait calls made on this thread
  const wait = libc.linux.epoll_wait;
  (libc.linux as { epoll_wait: typeof wait }).epoll_wait = (epfd, events, max, timeout) => {
    calls.push(timeout);
    return wait(epfd, events, max, timeout);
  };
  const ready = Promise.withResolvers<void>();
  waitOnMainThread(true, 2000);
  try {
    poller.add(7, {
      onEvents() {
        socket.room = 0;
        calls.length = 0; // from the wait after the events on
        ready.resolve();
      },
      onPollerError: (error) => ready.reject(error),
    }, EPOLLOUT);
    await ready.promise;
    await waitFor(() => libc.blockingCalls > 0, "the poller to block");
    // Looks (timeout 0) for 2 ms, then one sleep of up to 1 ms here, then the blocking thread.
    const sleep = calls.indexOf(1);
    assert(sleep > 1, `looked ${sleep} times before sleeping: ${calls.slice(0, 10)}`);
    assert(calls.slice(0, sleep).every((timeout) => timeout === 0), String(calls));
  } finally {
    waitOnMainThread(false);
    poller.remove(7);
  }
  await poller.whenIdle();
});

Deno.test("poller: an event that comes while a wait spins is taken without sleeping", async () => {
  const { libc, poller } = setUp();
  const socket = libc.socket(7);
  const slept: number[] = [];
  let looks = 0;
  const wait = libc.linux.epoll_wait;
  (libc.linux as { epoll_wait: typeof wait }).epoll_wait = (epfd, events, max, timeout) => {
    if (timeout > 0) slept.push(timeout);
    // The third look after the first answer finds the socket ready again.
    else if (socket.room === 0 && ++looks === 3) socket.room = 1 << 20;
    return wait(epfd, events, max, timeout);
  };
  let answers = 0;
  const twice = Promise.withResolvers<void>();
  waitOnMainThread(true, 1_000_000); // a second: only an event ends the spin
  try {
    poller.add(7, {
      onEvents() {
        socket.room = 0;
        if (++answers === 2) twice.resolve();
      },
      onPollerError: (error) => twice.reject(error),
    }, EPOLLOUT);
    await twice.promise;
    assertEquals([looks, slept], [3, []]);
  } finally {
    waitOnMainThread(false);
    poller.remove(7);
  }
  await poller.whenIdle();
});

Deno.test("poller: a spin that finds nothing is skipped for a number of waits that doubles, until one finds an event", async () => {
  const { libc, poller } = setUp();
  const socket = libc.socket(7);
  // Per wait here: how many looks it made before it slept (0: it skipped the spin).
  const looks: number[] = [];
  let looking = 0;
  /** In waits 30 to 44, the socket becomes ready during the spin's second look. */
  const readyWhileSpinning = () => looks.length >= 30 && looks.length < 45;
  const wait = libc.linux.epoll_wait;
  (libc.linux as { epoll_wait: typeof wait }).epoll_wait = (epfd, events, max, timeout) => {
    if (socket.room === 0) {
      if (timeout > 0) {
        // The wait here sleeps: the next event comes meanwhile, after any spin.
        looks.push(looking);
        looking = 0;
        socket.room = 1 << 20;
      } else if (++looking === 2 && readyWhileSpinning()) {
        looks.push(looking);
        looking = 0;
        socket.room = 1 << 20;
      }
    }
    return wait(epfd, events, max, timeout);
  };
  const done = Promise.withResolvers<void>();
  waitOnMainThread(true, 200);
  try {
    poller.add(7, {
      onEvents() {
        socket.room = 0; // answered: nothing is ready until the next event
        if (looks.length === 250) done.resolve();
      },
      onPollerError: (error) => done.reject(error),
    }, EPOLLOUT);
    await done.promise;
  } finally {
    waitOnMainThread(false);
    poller.remove(7);
  }
  await poller.whenIdle();
  const spun = looks.flatMap((count, wait) => count > 0 ? [wait] : []);
  // Spins that find nothing: then 1, 2, 4, 8 waits skip it.
  assertEquals(spun.slice(0, 5), [0, 2, 5, 10, 19], `looks per wait: ${looks}`);
  // After 16 skipped, a spin finds an event: every wait after it spins, and finds one at once.
  assertEquals(spun.filter((wait) => wait >= 30 && wait < 45), [
    36,
    37,
    38,
    39,
    40,
    41,
    42,
    43,
    44,
  ]);
  assert(looks.slice(36, 45).every((count) => count === 2), `looks per wait: ${looks}`);
  // Then they find nothing again: the skips start again from 1, and stop growing at 64.
  assertEquals(
    spun.filter((wait) => wait >= 45),
    [45, 47, 50, 55, 64, 81, 114, 179, 244],
    `looks per wait: ${looks}`,
  );
});

for (const on of [true, false]) {
  Deno.test(`poller: with waitOnMainThread(${on}), a wait right after events ${on ? "sleeps here first" : "goes to the blocking thread"}`, async () => {
    const { libc, poller } = setUp();
    const socket = libc.socket(7);
    const sleptHere: number[] = []; // the timeouts of epoll_wait calls made on this thread
    const wait = libc.linux.epoll_wait;
    (libc.linux as { epoll_wait: typeof wait }).epoll_wait = (epfd, events, max, timeout) => {
      if (timeout > 0) sleptHere.push(timeout);
      return wait(epfd, events, max, timeout);
    };
    const ready = Promise.withResolvers<void>();
    waitOnMainThread(on);
    try {
      poller.add(7, {
        onEvents() {
          socket.room = 0; // answered: nothing more is ready
          ready.resolve();
        },
        onPollerError: (error) => ready.reject(error),
      }, EPOLLOUT);
      await ready.promise;
      await waitFor(() => libc.blockingCalls > 0, "the poller to block");
      // On: one sleep of up to 1 ms here (it found nothing), then the blocking thread.
      assertEquals(sleptHere, on ? [1] : []);
    } finally {
      waitOnMainThread(false);
      poller.remove(7);
    }
    await poller.whenIdle();
  });
}
