/**
 * What Deno itself costs a UDP load generator, with none of this module's
 * code: `../shared/bench/udpload.c`'s loop written in JavaScript over FFI
 * (connected sockets, one datagram in flight on each, numbered in its
 * first 8 bytes; the same level-triggered `epoll_wait` of up to 256 events
 * for at most 10 ms, `recv` into one 64 KiB buffer until the socket is
 * empty, an echo whose number is not the one in flight counted late, and
 * every 10 ms an echo unanswered for 200 ms counted lost and the next
 * datagram sent), its state in typed arrays, and nothing else: no
 * transport, no protocol, no histogram (each latency is counted in a bucket
 * per microsecond, one store), and of the echo's bytes only its length and
 * number are checked (udpload compares them all). `./bench --udp` should
 * not be faster than this on Deno, apart from noise; `deno task
 * bench:loadgen --udp --floor` runs it beside the other two. Linux on
 * x86_64 (its `struct epoll_event` layout).
 *
 * ```sh
 * deno run -A bench/udp_load_floor.ts --port 9401 --size 512 --connections 32 --duration 4
 * ```
 *
 * Prints one JSON line: `{"rps": …, "requests": …, "seconds": …,
 * "errors": …, "lost": …, "late": …}`. As udpload, it counts as errors the
 * echoes of the wrong length and the failed `recv`s other than a refusal,
 * and then exits 1.
 *
 * @module
 */

import {
  AF_INET,
  EAGAIN,
  EPOLL_CTL_ADD,
  EPOLLIN,
  errnoView,
  floorCase,
  libc,
  now,
} from "./_floor_setup.ts";

const { host, port, size, connections, duration, check, sockaddr } = floorCase(Deno.args, 65507);
if (check) {
  throw new TypeError(
    "Cannot use --check here: only the TCP floor checks its echoes; drop --check",
  );
}
const SOCK_DGRAM = 2, SOCK_NONBLOCK = 0x800, ECONNREFUSED = 111;
/** udpload's default `--timeout-ms`, in seconds. */
const TIMEOUT = 0.2;

const epfd = libc.epoll_create1(0);
const fds = new Int32Array(connections);
/** Each socket's datagram in flight: its number, and when it was sent. */
const sequences = new Uint32Array(connections);
const sentAt = new Float64Array(connections);
const event = new Uint32Array(3); // struct epoll_event, packed: events, then 8 bytes of data
for (let i = 0; i < connections; i++) {
  const fd = fds[i] = libc.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (libc.connect(fd, sockaddr, 16) !== 0) {
    throw new Error(`Cannot connect a UDP socket to ${host}:${port}`);
  }
  event[0] = EPOLLIN;
  event[1] = i;
  libc.epoll_ctl(epfd, EPOLL_CTL_ADD, fd, event);
}

const message = new Uint8Array(size).fill(0x78);
/**
 * The message's number and socket, as udpload writes them: two 64-bit
 * words, whose high halves stay 0 here.
 */
const numbered = size >= 16 ? new Uint32Array(message.buffer, 0, 4).fill(0) : null;
const SIZE = BigInt(size);
const buffer = new Uint8Array(1 << 16);
const echoed = new Uint32Array(buffer.buffer, 0, 1);
const BUFFER = BigInt(buffer.length);
const events = new Uint32Array(3 * 256);
/** Latencies by whole microsecond, the last bucket for anything longer. */
const latencies = new Uint32Array(1 << 16);

/** udpload's `send_next`: the socket's next datagram; a failed send is lost, and resent. */
function sendNext(i: number, t: number): void {
  const sequence = ++sequences[i];
  sentAt[i] = t;
  if (numbered !== null) {
    numbered[0] = sequence;
    numbered[2] = i;
  }
  libc.send(fds[i], message, SIZE, 0);
}

const start = now();
const end = start + duration;
let requests = 0;
let errors = 0;
let lost = 0;
let late = 0;
for (let i = 0; i < connections; i++) sendNext(i, now());
let nextCheck = start + 0.01;
while (now() < end) {
  const n = libc.epoll_wait(epfd, events, 256, 10);
  for (let k = 0; k < n; k++) {
    const i = events[3 * k + 1];
    for (;;) {
      const r = libc.recv(fds[i], buffer, BUFFER, 0);
      if (r < 0) {
        const errno = errnoView.getInt32();
        if (errno !== EAGAIN && errno !== ECONNREFUSED) errors++;
        break;
      }
      if (numbered !== null && echoed[0] !== sequences[i]) {
        late++;
        continue;
      }
      if (r !== size) errors++;
      const t = now();
      const us = Math.round((t - sentAt[i]) * 1e6);
      latencies[us < 65535 ? us : 65535]++;
      requests++;
      sendNext(i, t);
    }
  }
  const t = now();
  if (t >= nextCheck) {
    for (let i = 0; i < connections; i++) {
      if (t - sentAt[i] > TIMEOUT) {
        lost++;
        sendNext(i, t);
      }
    }
    nextCheck = t + 0.01;
  }
}
const seconds = now() - start;
for (const fd of fds) libc.close(fd);
libc.close(epfd);
console.log(
  JSON.stringify({ rps: Math.round(requests / seconds), requests, seconds, errors, lost, late }),
);
if (errors > 0) Deno.exitCode = 1;
