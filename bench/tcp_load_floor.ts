/**
 * What Deno itself costs a TCP load generator, with none of this module's
 * code: `../shared/bench/echoload.c`'s loop written in JavaScript over FFI
 * (the same `epoll_wait` on every connection, level-triggered for reading
 * and writing so it never sleeps, the same `recv` into one 1 MiB buffer,
 * the same `send` of the message from where it stopped, one clock read per
 * answer), its state in typed arrays, and nothing else: no transport, no
 * protocol, no check of the echo, no histogram (each latency is counted in
 * a bucket per microsecond, one store, as echoload stores it). `./bench`
 * should not be faster than this on Deno, apart from noise; `deno task
 * bench:loadgen --floor` runs it beside the other two. Linux on x86_64
 * (its `struct epoll_event` layout).
 *
 * ```sh
 * deno run -A bench/tcp_load_floor.ts --port 9401 --size 1000 --connections 10 --duration 4
 * ```
 *
 * Prints one JSON line: `{"rps": …, "requests": …, "seconds": …, "errors":
 * …}`, the requests/s counted, as echoload counts them, from when every
 * connection is made. As echoload, it stops at the first error (a failed
 * `send` or `recv`, the server closing, or more bytes back than were sent),
 * and then exits 1.
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";

const flags = parseArgs(Deno.args, {
  string: ["host", "port", "size", "connections", "duration"],
  default: { host: "127.0.0.1", size: "1000", connections: "10", duration: "4" },
});
const port = Number(flags.port);
const size = Number(flags.size);
const connections = Number(flags.connections);
const duration = Number(flags.duration);
for (const [name, value, most] of [["port", port, 65535], ["size", size, 1 << 30]] as const) {
  if (!Number.isInteger(value) || value < 1 || value > most) {
    throw new RangeError(
      `Cannot use --${name} ${flags[name]}: give a whole number from 1 to ${most}`,
    );
  }
}
if (!Number.isInteger(connections) || connections < 1) {
  throw new RangeError(`Cannot use --connections ${flags.connections}: give a whole number >= 1`);
}
if (!(duration > 0)) {
  throw new RangeError(`Cannot use --duration ${flags.duration}: give seconds > 0`);
}
if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
  throw new Error(
    `Cannot run on ${Deno.build.os} ${Deno.build.arch}: this program reads Linux's x86_64 ` +
      "struct epoll_event; run it on Linux on x86_64",
  );
}
const address: number[] = String(flags.host).split(".").map(Number);
if (address.length !== 4 || address.some((byte) => !(byte >= 0 && byte <= 255))) {
  throw new TypeError(`Cannot use --host ${flags.host}: give an IPv4 address such as 127.0.0.1`);
}

const libc = Deno.dlopen("libc.so.6", {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
}).symbols;
/** This thread's `errno`, which the FFI calls above set. */
const errnoView = new Deno.UnsafePointerView(libc.__errno_location()!);
const EAGAIN = 11;
const AF_INET = 2, SOCK_STREAM = 1, IPPROTO_TCP = 6, TCP_NODELAY = 1;
const EPOLLIN = 0x1, EPOLLOUT = 0x4, EPOLLERR = 0x8, EPOLLHUP = 0x10, EPOLL_CTL_ADD = 1;
const MSG_DONTWAIT = 0x40, MSG_NOSIGNAL = 0x4000, CLOCK_MONOTONIC = 1;

const timespec = new Uint32Array(4);
/** Seconds on the monotonic clock, as echoload's `now()`. */
const now = () => (libc.clock_gettime(CLOCK_MONOTONIC, timespec), timespec[0] + timespec[2] / 1e9);

const sockaddr = new Uint8Array(16);
new DataView(sockaddr.buffer).setUint16(0, AF_INET, true);
new DataView(sockaddr.buffer).setUint16(2, port);
sockaddr.set(address, 4);
const epfd = libc.epoll_create1(0);
const fds = new Int32Array(connections);
const sent = new Float64Array(connections);
const received = new Float64Array(connections);
const startedAt = new Float64Array(connections);
const one = new Int32Array([1]);
const event = new Uint32Array(3); // struct epoll_event, packed: events, then 8 bytes of data
for (let i = 0; i < connections; i++) {
  const fd = fds[i] = libc.socket(AF_INET, SOCK_STREAM, 0);
  libc.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, one, 4);
  if (libc.connect(fd, sockaddr, 16) !== 0) {
    throw new Error(`Cannot connect to ${flags.host}:${port}: is an echo server listening?`);
  }
  event[0] = EPOLLIN | EPOLLOUT;
  event[1] = i;
  libc.epoll_ctl(epfd, EPOLL_CTL_ADD, fd, event);
}

const message = new Uint8Array(size).fill(0x78);
const buffer = new Uint8Array(1 << 20);
const BUFFER = BigInt(buffer.length);
const SIZE = BigInt(size);
const events = new Uint32Array(3 * 256);
/** Latencies by whole microsecond, the last bucket for anything longer. */
const latencies = new Uint32Array(1 << 16);
/** `send` of the message from byte `from` on connection `i`: what the socket takes now. */
function sendFrom(i: number, from: number): number {
  return from === 0
    ? libc.send(fds[i], message, SIZE, MSG_DONTWAIT | MSG_NOSIGNAL)
    : libc.send(fds[i], message.subarray(from), BigInt(size - from), MSG_DONTWAIT | MSG_NOSIGNAL);
}

const start = now();
const end = start + duration;
startedAt.fill(start);
let requests = 0;
let errors = 0;
loop: while (now() < end) {
  const n = libc.epoll_wait(epfd, events, 256, 100);
  for (let k = 0; k < n; k++) {
    const ready = events[3 * k];
    const i = events[3 * k + 1];
    if ((ready & EPOLLOUT) !== 0 && sent[i] < size) {
      const w = sendFrom(i, sent[i]);
      if (w > 0) sent[i] += w;
      else if (errnoView.getInt32() !== EAGAIN) {
        errors++;
        break loop;
      }
    }
    if ((ready & (EPOLLIN | EPOLLHUP | EPOLLERR)) !== 0) {
      const r = libc.recv(fds[i], buffer, BUFFER, MSG_DONTWAIT);
      if (r === 0 || (r > 0 && (received[i] += r) > size)) {
        errors++;
        break loop; // the server closed, or echoed more than was sent
      }
      if (r < 0 && errnoView.getInt32() !== EAGAIN) {
        errors++;
        break loop; // a reset, say
      }
      if (received[i] === size) {
        const t = now();
        const us = Math.round((t - startedAt[i]) * 1e6);
        latencies[us < 65535 ? us : 65535]++;
        requests++;
        sent[i] = received[i] = 0;
        startedAt[i] = t;
        const w = sendFrom(i, 0);
        if (w > 0) sent[i] = w;
        else if (errnoView.getInt32() !== EAGAIN) {
          errors++;
          break loop;
        }
      }
    }
  }
}
const seconds = now() - start;
for (const fd of fds) libc.close(fd);
libc.close(epfd);
console.log(JSON.stringify({ rps: Math.round(requests / seconds), requests, seconds, errors }));
if (errors > 0) Deno.exitCode = 1;
