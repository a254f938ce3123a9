/**
 * The readiness loop, the tutorial's `selectors` step: non-blocking sockets
 * again, but instead of trying each one over and over, the program asks the
 * kernel which are ready and sleeps until one is. It uses no CPU while
 * nothing happens, and answers as soon as something does.
 *
 * Run it:   deno run -A examples/readiness_loop_server.ts [port] [sndbuf]    (default 8888)
 * Try it:   nc 127.0.0.1 8888   in several terminals; `top` shows it idle at 0% CPU.
 *
 * The second argument, if given, sets each connection's send buffer
 * (SO_SNDBUF) in bytes. Over loopback Linux grows the buffers to
 * megabytes, so partial sends are rare; give it 4096 to watch them happen
 * (each connection's last line counts them).
 *
 * Linux only, and it needs --allow-ffi (or -A): it runs on this module's
 * epoll poller (src/poll/_poller.ts), the one under the library's servers.
 *
 * Three steps, as with Python's `selectors`:
 *
 * - register: say which socket to watch, for what (readable, writable), and
 *   what to call when it is ready. `sel.register(sock, EVENT_READ, accept)`
 *   is `poller.add(fd, handler, EPOLLIN)` here.
 * - wait: one call, `epoll_wait`, sleeps until some registered socket is
 *   ready and returns the list of those that are: `sel.select()`.
 * - dispatch: call each ready socket's handler. The listener's accepts; a
 *   connection's receives and sends back, or closes when `recv` returns 0.
 *
 * The poller runs the wait and the dispatch itself, in a loop that lasts
 * while anything is registered (`#run` in _poller.ts: `epoll_wait`, then
 * `onEvents` of each ready descriptor, on and on; the wait runs on one of
 * Deno's blocking threads, so timers and signals still get their turn).
 * This program registers and handles. A handler must never wait: it does
 * what the socket allows now and returns, and the loop goes on to the next.
 *
 * `send` may take only part of an echo (the client is not reading fast
 * enough). The rest is kept, and the connection watches for writability
 * instead of readability until all of it is out. Reading meanwhile would
 * pile up whatever a client that never reads sends us; not reading makes
 * its sends wait instead (backpressure).
 *
 * Handlers called when a socket is ready, that keep their own unsent bytes:
 * that is what asyncio's `Protocol` and `Transport` package up.
 * examples/protocol_server.ts is the next step.
 */

import {
  EAGAIN,
  EINTR,
  EPOLLIN,
  EPOLLOUT,
  MSG_NOSIGNAL,
  O_CLOEXEC,
  O_NONBLOCK,
} from "../src/libc/_constants.ts";
import { type LinuxLibc, loadLibc } from "../src/libc/_libc.ts";
import { getPoller, type PollTarget } from "../src/poll/_poller.ts";
import { parseSockaddr, SOCKADDR_SIZE } from "../src/sockets/_address.ts";
import { openListeningSocket } from "../src/sockets/_listener.ts";
import { setOption } from "../src/sockopt/_options.ts";

const port = Number(Deno.args[0] ?? 8888);
const sendBuffer = Deno.args[1] === undefined ? undefined : Number(Deno.args[1]);

const found = getPoller(); // the process's epoll instance, or why there is none
if (typeof found === "string") {
  console.error(`This example needs Linux and --allow-ffi: ${found}.`);
  Deno.exit(1);
}
const poller = found;
const libc = loadLibc() as LinuxLibc; // there whenever the poller is
const { recv, send, close } = libc.symbols;
const buffer = new Uint8Array(65536); // every connection reads into it: one handler runs at a time

/** A connection's handler: the poller calls it when its socket is ready. */
class Connection implements PollTarget {
  /** What the kernel has not taken yet of the last echo. */
  #unsent = new Uint8Array(0);
  #echoed = 0;
  /** How many times an echo did not fit and we waited for room (for the log). */
  #waits = 0;

  constructor(readonly fd: number, readonly peer: string) {}

  /** Dispatch. We watch for one thing at a time, so what is unsent says which one came. */
  onEvents(): void {
    if (this.#unsent.length > 0) this.#send(this.#unsent); // writable: send the rest
    else this.#receive(); // readable
  }

  #receive(): void {
    // Ready, so recv() returns at once. Lengths are C size_t: the FFI takes them as bigints.
    const n = recv(this.fd, buffer, BigInt(buffer.length), 0);
    if (n > 0) return this.#send(buffer.subarray(0, n));
    if (n === 0) return this.drop("closed"); // the client closed its side
    const code = libc.errno(); // EAGAIN: nothing after all; the loop will call again
    if (code !== EAGAIN && code !== EINTR) this.drop(`recv: ${libc.describe(code)}`);
  }

  /** Sends what the kernel takes of `data` now, and keeps the rest for when there is room. */
  #send(data: Uint8Array): void {
    // MSG_NOSIGNAL: a closed peer is an EPIPE error, not a SIGPIPE that kills the process.
    let sent = send(this.fd, data, BigInt(data.length), MSG_NOSIGNAL);
    if (sent < 0) {
      const code = libc.errno();
      if (code !== EAGAIN && code !== EINTR) return this.drop(`send: ${libc.describe(code)}`);
      sent = 0; // the socket's send buffer is full
    }
    this.#echoed += sent;
    const waiting = this.#unsent.length > 0;
    this.#unsent = data.slice(sent); // a copy: `buffer` is read into again before it goes out
    if (this.#unsent.length > 0 && !waiting) {
      // Some left: wait for room (writable), and read no more meanwhile.
      this.#waits++;
      poller.modify(this.fd, EPOLLOUT);
    } else if (this.#unsent.length === 0 && waiting) {
      poller.modify(this.fd, EPOLLIN); // all out: back to reading
    }
  }

  drop(why: string): void {
    if (!connections.delete(this)) return;
    poller.remove(this.fd); // first: once closed, the kernel may give the number to a new socket
    close(this.fd);
    console.log(
      `${this.peer} ${why} (echoed ${this.#echoed} bytes, waited for room ${this.#waits} times)`,
    );
  }

  /** The poller itself failed (epoll_wait returned an error): nothing will be watched again. */
  onPollerError(error: Error): void {
    this.drop(error.message);
  }
}

const connections = new Set<Connection>();

// socket(), bind(), listen(): non-blocking, so accept4() never waits.
const listener = openListeningSocket(libc, {
  hostname: "127.0.0.1",
  port,
  backlog: 128,
  configure(fd) {
    setOption(libc, fd, "reuseAddress", true); // as Deno.listen does
    // Accepted sockets inherit the listener's buffer sizes.
    if (sendBuffer !== undefined) setOption(libc, fd, "sendBufferSize", sendBuffer);
  },
});
console.log(`Serving on 127.0.0.1:${listener.addr.port}`);

const peerAddress = new Uint8Array(SOCKADDR_SIZE);
const peerLength = new Uint32Array(1);
let accepting = true;

// Register the listener: readable means a connection waits to be accepted. The poller's
// loop starts with the first registration.
poller.add(listener.fd, {
  onEvents() {
    for (;;) {
      peerLength[0] = SOCKADDR_SIZE;
      const fd = libc.linux.accept4(listener.fd, peerAddress, peerLength, O_NONBLOCK | O_CLOEXEC);
      // EAGAIN: nobody else waits. (Out of descriptors, EMFILE, the listener stays readable
      // and this is called again and again: a real server pauses accepting for a while, as
      // src/tcp/_epoll_acceptor.ts does.)
      if (fd < 0) return;
      const { hostname, port } = parseSockaddr(libc.constants, peerAddress)!;
      const connection = new Connection(fd, `${hostname}:${port}`);
      connections.add(connection);
      console.log(`Connection from ${connection.peer}`);
      poller.add(fd, connection, EPOLLIN); // register: call it when there is something to read
    }
  },
  onPollerError: stopAccepting,
}, EPOLLIN);

function stopAccepting(): void {
  if (!accepting) return;
  accepting = false;
  poller.remove(listener.fd);
  close(listener.fd);
  console.log("Stopped accepting");
}

// Ctrl-C: stop accepting; connections already open go on until their clients close. The
// poller's loop ends when nothing is registered, and the program with it.
Deno.addSignalListener("SIGINT", stopAccepting);
