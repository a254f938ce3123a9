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
 * With `--check`, it also checks every byte of each echo as `./bench` does
 * (`src/load/_pattern.ts`, written again here): the message repeats every
 * 256 bytes, and a read is compared with the pattern in one `memcmp` up to
 * 16 KiB, or else its first 256 bytes with the pattern and the rest with
 * itself 256 bytes earlier. That is the most `./bench` could reach on Deno
 * while it checks what it is sent back, as it must.
 *
 * ```sh
 * deno run -A bench/tcp_load_floor.ts --port 9401 --size 1000 --connections 10 --duration 4
 * deno run -A bench/tcp_load_floor.ts --port 9401 --size 100000 --check
 * ```
 *
 * Prints one JSON line: `{"rps": …, "requests": …, "seconds": …, "errors":
 * …}`, the requests/s counted, as echoload counts them, from when every
 * connection is made. As echoload, it stops at the first error (a failed
 * `send` or `recv`, the server closing, more bytes back than were sent, or
 * with `--check` a byte that differs, which it names), and then exits 1.
 *
 * @module
 */

import {
  AF_INET,
  EAGAIN,
  EPOLL_CTL_ADD,
  EPOLLERR,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  errnoView,
  floorCase,
  libc,
  MSG_DONTWAIT,
  MSG_NOSIGNAL,
  now,
} from "./_floor_setup.ts";

const { host, port, size, connections, duration, check, sockaddr } = floorCase(Deno.args, 1 << 30);
const SOCK_STREAM = 1, IPPROTO_TCP = 6, TCP_NODELAY = 1;

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
    throw new Error(`Cannot connect to ${host}:${port}: is an echo server listening?`);
  }
  event[0] = EPOLLIN | EPOLLOUT;
  event[1] = i;
  libc.epoll_ctl(epfd, EPOLL_CTL_ADD, fd, event);
}

/** With `--check`, the message repeats every `PERIOD` bytes: byte `i` is `patternByte(i)`. */
const PERIOD = 256;
const patternByte = (i: number) => (i * 31 + 7) & 0xff;
const message = check
  ? Uint8Array.from({ length: size }, (_, i) => patternByte(i))
  : new Uint8Array(size).fill(0x78);
const buffer = new Uint8Array(1 << 20);
const BUFFER = BigInt(buffer.length);
const SIZE = BigInt(size);

/** Reads up to this long are compared with the pattern in one call. */
const REFERENCE_LENGTH = 16 * 1024;
/** The pattern from each of its offsets in a period on. */
const reference = Uint8Array.from({ length: REFERENCE_LENGTH + PERIOD }, (_, i) => patternByte(i));
const references = Array.from({ length: PERIOD }, (_, offset) => reference.subarray(offset));
/** The read buffer from its second period on. */
const tail = buffer.subarray(PERIOD);
const PERIOD_SIZE = BigInt(PERIOD);
let lastLength = -1;
let lastSize = 0n;
/** `length` as a `usize`; the last one is kept, as reads of one length follow each other. */
function sizeOf(length: number): bigint {
  if (length !== lastLength) {
    lastLength = length;
    lastSize = BigInt(length);
  }
  return lastSize;
}
/** Whether the `r` bytes just read hold the message's from byte `at` on. */
function echoMatches(r: number, at: number): boolean {
  const expected = references[at % PERIOD];
  if (r <= REFERENCE_LENGTH) return libc.memcmp(buffer, expected, sizeOf(r)) === 0;
  return libc.memcmp(buffer, expected, PERIOD_SIZE) === 0 &&
    libc.memcmp(tail, buffer, sizeOf(r - PERIOD)) === 0;
}
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
      if (check && r > 0 && r <= size - received[i] && !echoMatches(r, received[i])) {
        let k = 0;
        while (buffer[k] === message[received[i] + k]) k++;
        console.error(`The echo differs from what was sent at byte ${received[i] + k}`);
        errors++;
        break loop;
      }
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
