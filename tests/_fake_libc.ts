/**
 * A fake of the libc calls the poller and the epoll driver make, so tests
 * can produce what a real kernel rarely does on cue: a readable event with
 * nothing to read (EAGAIN), an interrupted or failed `epoll_wait`, sends
 * that take a few bytes at a time, errors in the middle of a batch, a
 * descriptor number reused within one batch.
 *
 * Readiness is level-triggered and computed from the fake sockets' state,
 * unless a test scripts the next waits itself.
 */

import type { EpollLibc } from "../src/poll/_poller.ts";
import { errnoError } from "../src/libc/_libc.ts";
import {
  EAGAIN,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  EPOLL_DATA_OFFSET,
  EPOLL_EVENT_SIZE,
  EPOLLIN,
  EPOLLOUT,
} from "../src/libc/_constants.ts";

/** One fake connected socket. */
export class FakeSocket {
  /** What `recv` returns, in order: bytes, end of input, or an errno. */
  input: (Uint8Array | "eof" | { errno: number })[] = [];
  /** Bytes `send` takes before it would block. */
  room = Infinity;
  /** The most bytes one `send` takes. */
  perSend = Infinity;
  /** Everything sent, in order. */
  sent: number[] = [];
  /** Calls of `recv` on this socket. */
  recvCalls = 0;
  closed = false;
  shutDown = false;

  /** Adds `text` (or bytes) to what the peer sent. */
  push(data: string | Uint8Array): void {
    this.input.push(typeof data === "string" ? new TextEncoder().encode(data) : data);
  }

  /** What was sent, as text. */
  text(): string {
    return new TextDecoder().decode(new Uint8Array(this.sent));
  }
}

/** A scripted result of the next `epoll_wait`: a failure, or these events. */
export type ScriptedWait = { fail: number } | { events: [fd: number, events: number][] };

/** See the module documentation. */
export class FakeLibc implements EpollLibc {
  readonly sockets: Map<number, FakeSocket> = new Map();
  /** The events each descriptor is registered for. */
  readonly interest: Map<number, number> = new Map();
  /** The high word of each descriptor's `data` (the poller's generation), as registered. */
  readonly tags: Map<number, number> = new Map();
  /** The calls that matter to ordering, as text: "close 10", "del 10", ... */
  readonly log: string[] = [];
  /** Results of the next non-blocking `epoll_wait` calls; consumed before readiness is computed. */
  readonly waits: ScriptedWait[] = [];
  /**
   * Results of the next blocking waits (the call made on Deno's blocking
   * thread, which the poller makes once a non-blocking one found nothing).
   */
  readonly blockingWaits: ScriptedWait[] = [];
  /** Calls of `epoll_wait` (both kinds). */
  waitCalls = 0;
  /** Calls of the blocking `epoll_wait`. */
  blockingCalls = 0;
  #errno = 0;
  #counter = 0n;
  #nextFd = 1000;
  #wake: (() => void) | null = null;
  readonly epfd = 3;
  readonly eventFd = 4;

  readonly symbols: EpollLibc["symbols"] = {
    recv: (fd, buffer, size) => {
      const socket = this.sockets.get(fd)!;
      socket.recvCalls++;
      const next = socket.input[0];
      if (next === undefined) return this.#fail(EAGAIN);
      if (next === "eof") return 0;
      if (!(next instanceof Uint8Array)) {
        socket.input.shift();
        return this.#fail(next.errno);
      }
      const target = buffer as Uint8Array;
      const n = Math.min(next.length, Number(size), target.length);
      target.set(next.subarray(0, n));
      if (n === next.length) socket.input.shift();
      else socket.input[0] = next.subarray(n);
      return n;
    },
    send: (fd, data, size) => {
      const socket = this.sockets.get(fd)!;
      const n = Math.min(Number(size), socket.room, socket.perSend);
      if (n === 0) return this.#fail(EAGAIN);
      socket.sent.push(...(data as Uint8Array).subarray(0, n));
      socket.room -= n;
      return n;
    },
    shutdown: (fd) => {
      this.sockets.get(fd)!.shutDown = true;
      return 0;
    },
    close: (fd) => {
      this.log.push(`close ${fd}`);
      const socket = this.sockets.get(fd);
      if (socket) socket.closed = true;
      return 0;
    },
    dup: () => this.#nextFd++,
  };

  readonly linux: EpollLibc["linux"] = {
    epoll_create1: () => this.epfd,
    eventfd: () => this.eventFd,
    epoll_ctl: (_epfd: number, op: number, fd: number, event: BufferSource | null) => {
      const view = new DataView((event as Uint8Array).buffer);
      const events = view.getUint32(0, true);
      this.tags.set(fd, view.getUint32(EPOLL_DATA_OFFSET + 4, true));
      if (op === EPOLL_CTL_DEL) {
        this.log.push(`del ${fd}`);
        this.interest.delete(fd);
      } else if (op === EPOLL_CTL_ADD || op === EPOLL_CTL_MOD) {
        this.interest.set(fd, events);
      }
      return 0;
    },
    epoll_wait: (_epfd: number, events: BufferSource | null) =>
      this.#wait(events as Uint8Array, this.waits),
    epoll_wait_blocking: (
      _epfd: number,
      events: BufferSource | null,
      _max: number,
      timeout: number,
    ) => {
      const buffer = events as Uint8Array;
      // With no timeout, the poller only lets Deno's event loop turn: it answers what is ready,
      // as the real call does, once the event loop has run (timers included).
      if (timeout === 0) {
        return new Promise<number>((resolve) =>
          setTimeout(() => resolve(this.#wait(buffer, [])), 0)
        );
      }
      this.blockingCalls++;
      const scripted = this.blockingWaits.shift();
      // errno belongs to the thread that made the call: the caller cannot read it here.
      if (scripted !== undefined) return Promise.resolve(this.#result(buffer, scripted, false));
      const n = this.#wait(buffer, []);
      if (n !== 0) return Promise.resolve(n);
      return new Promise<number>((resolve) => {
        // A timeout (the poller's next timer) ends the wait with nothing, as the real call does.
        const timer = timeout > 0 ? setTimeout(() => wake(), timeout) : undefined;
        const wake = this.#wake = () => {
          clearTimeout(timer);
          if (this.#wake === wake) this.#wake = null;
          resolve(this.#wait(buffer, []));
        };
      });
    },
    accept4: () => this.#fail(EAGAIN),
    read: () => {
      this.#counter = 0n;
      return 8;
    },
    write: () => {
      this.#counter = 1n;
      this.kick();
      return 8;
    },
    getaddrinfo: () => -1,
    freeaddrinfo: () => {},
    gai_strerror: () => null,
  } as unknown as EpollLibc["linux"];

  errno(): number {
    return this.#errno;
  }

  error(code: number, action: string): Error {
    return errnoError(code, `Cannot ${action}: fake errno ${code} (os error ${code})`);
  }

  /** A new fake socket on descriptor `fd`. */
  socket(fd: number): FakeSocket {
    const socket = new FakeSocket();
    this.sockets.set(fd, socket);
    return socket;
  }

  /** Something changed: a blocked wait looks again. */
  kick(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  #fail(code: number): number {
    this.#errno = code;
    return -1;
  }

  /** A scripted result written into `buffer`; a failure sets errno only when `setErrno`. */
  #result(buffer: Uint8Array, scripted: ScriptedWait, setErrno: boolean): number {
    this.waitCalls++;
    if ("fail" in scripted) {
      if (setErrno) this.#errno = scripted.fail;
      return -1;
    }
    scripted.events.forEach(([fd, events], i) => this.#put(buffer, i, fd, events));
    return scripted.events.length;
  }

  // As the kernel does, an event carries the data the descriptor was registered with.
  #put(buffer: Uint8Array, i: number, fd: number, events: number): void {
    const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    view.setUint32(i * EPOLL_EVENT_SIZE, events, true);
    view.setUint32(i * EPOLL_EVENT_SIZE + EPOLL_DATA_OFFSET, fd, true);
    view.setUint32(i * EPOLL_EVENT_SIZE + EPOLL_DATA_OFFSET + 4, this.tags.get(fd) ?? 0, true);
  }

  #wait(buffer: Uint8Array, script: ScriptedWait[]): number {
    const scripted = script.shift();
    if (scripted !== undefined) return this.#result(buffer, scripted, true);
    this.waitCalls++;
    const put = (i: number, fd: number, events: number) => this.#put(buffer, i, fd, events);
    let n = 0;
    if (this.#counter > 0n && this.interest.has(this.eventFd)) put(n++, this.eventFd, EPOLLIN);
    for (const [fd, wanted] of this.interest) {
      const socket = this.sockets.get(fd);
      if (socket === undefined) continue;
      let ready = 0;
      if ((wanted & EPOLLIN) !== 0 && socket.input.length > 0) ready |= EPOLLIN;
      if ((wanted & EPOLLOUT) !== 0 && socket.room > 0) ready |= EPOLLOUT;
      if (ready !== 0) put(n++, fd, ready);
    }
    return n;
  }
}
