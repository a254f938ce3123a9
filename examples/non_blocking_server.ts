/**
 * Non-blocking sockets: one loop serves every client by never waiting. It
 * tries to accept, tries to read each connection, sends back what came, and
 * starts over, as fast as it can. Each second it prints the CPU time it
 * used: watch it burn a whole core while nobody is connected.
 *
 * Run it:   deno run -A examples/non_blocking_server.ts [port] [sndbuf]    (default 8888)
 * Try it:   nc 127.0.0.1 8888   in two terminals; type lines, and watch the CPU line.
 *
 * The second argument sets each connection's send buffer (SO_SNDBUF) in
 * bytes; a small one (4096) makes `send` take only part of an echo often.
 *
 * Linux only, and it needs --allow-ffi (or -A): Deno's sockets have no
 * non-blocking mode, so the sockets are opened and read through libc
 * (src/libc/_libc.ts, the module's own binding).
 *
 * A non-blocking socket never makes a call wait: `accept4` with nobody in
 * the backlog, or `recv` with nothing received, fails at once with EAGAIN
 * ("try again"). So no client blocks another, unlike the blocking server,
 * and no thread or task per client is needed.
 *
 * And it is the wrong answer. With nothing to do, the loop still asks the
 * kernel about every socket, hundreds of thousands of times a second, and
 * uses a core for it: the CPU line says so. Sleeping between passes saves
 * the CPU but delays every answer by up to the sleep: a millisecond burns
 * less, but not nothing; a second wastes nothing, and every echo waits.
 * There is no good setting. The fix is to ask the kernel once which
 * sockets are ready, and sleep until one is: examples/readiness_loop_server.ts.
 */

import process from "node:process";
import { EAGAIN, EINTR, MSG_NOSIGNAL, O_CLOEXEC, O_NONBLOCK } from "../src/libc/_constants.ts";
import { isLibc, type LinuxLibc, loadLibc } from "../src/libc/_libc.ts";
import { parseSockaddr, SOCKADDR_SIZE } from "../src/sockets/_address.ts";
import { openListeningSocket } from "../src/sockets/_listener.ts";
import { setOption } from "../src/sockopt/_options.ts";

const port = Number(Deno.args[0] ?? 8888);
const sendBuffer = Deno.args[1] === undefined ? undefined : Number(Deno.args[1]);

const loaded = loadLibc();
if (!isLibc(loaded) || loaded.linux === null) {
  const reason = isLibc(loaded) ? `this is ${Deno.build.os}` : loaded.reason;
  console.error(`This example needs Linux and --allow-ffi: ${reason}.`);
  Deno.exit(1);
}
const libc = loaded as LinuxLibc;
const { recv, send, close } = libc.symbols;

// socket(), bind(), listen(): opened with SOCK_NONBLOCK, so accept4() never waits.
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

interface Connection {
  fd: number;
  peer: string;
  /** What the kernel has not taken yet of the last echo. */
  unsent: Uint8Array;
}

const connections = new Set<Connection>();
const buffer = new Uint8Array(65536); // every connection reads into it, one at a time
const peerAddress = new Uint8Array(SOCKADDR_SIZE);
const peerLength = new Uint32Array(1);
let accepting = true;
let echoed = 0;
let passes = 0;

// Ctrl-C: stop accepting; connections already open go on until their clients close.
Deno.addSignalListener("SIGINT", () => {
  if (!accepting) return;
  accepting = false;
  close(listener.fd);
  console.log("Stopped accepting");
});

/** accept4() until nobody waits. */
function acceptAll(): void {
  for (;;) {
    peerLength[0] = SOCKADDR_SIZE;
    const fd = libc.linux.accept4(listener.fd, peerAddress, peerLength, O_NONBLOCK | O_CLOEXEC);
    // EAGAIN: nobody is waiting. Any other error (a client that gave up, no descriptor
    // left) is tried again on the next pass, like everything here.
    if (fd < 0) return;
    const { hostname, port } = parseSockaddr(libc.constants, peerAddress)!;
    const connection = { fd, peer: `${hostname}:${port}`, unsent: new Uint8Array(0) };
    connections.add(connection);
    console.log(`Connection from ${connection.peer}`);
  }
}

/** One try at one connection: send what is left of the last echo, or read and echo. */
function serve(connection: Connection): void {
  if (connection.unsent.length > 0) {
    trySend(connection); // and read nothing more from a client that is not reading its echo
    return;
  }
  // Lengths are C size_t: the FFI takes them as bigints.
  const n = recv(connection.fd, buffer, BigInt(buffer.length), 0);
  if (n > 0) {
    connection.unsent = buffer.slice(0, n); // a copy: `buffer` is read into again next
    trySend(connection);
  } else if (n === 0) {
    drop(connection, "closed"); // the client closed its side, and has all its echoes
  } else {
    const code = libc.errno();
    if (code !== EAGAIN && code !== EINTR) drop(connection, libc.describe(code));
  }
}

/** send() what the kernel takes of `unsent` now; the rest waits for a later pass. */
function trySend(connection: Connection): void {
  const { fd, unsent } = connection;
  // MSG_NOSIGNAL: a closed peer is an EPIPE error, not a SIGPIPE that kills the process.
  const sent = send(fd, unsent, BigInt(unsent.length), MSG_NOSIGNAL);
  if (sent >= 0) {
    echoed += sent;
    connection.unsent = unsent.subarray(sent); // empty once everything is out
    return;
  }
  const code = libc.errno();
  // EAGAIN: the socket's send buffer is full (the client reads slowly). Try again next pass.
  if (code !== EAGAIN && code !== EINTR) drop(connection, libc.describe(code));
}

function drop(connection: Connection, why: string): void {
  connections.delete(connection);
  close(connection.fd);
  console.log(`${connection.peer} ${why}`);
}

function cpuSeconds(): number {
  const { user, system } = process.cpuUsage(); // microseconds, since the process started
  return (user + system) / 1e6;
}

let lastReport = performance.now();
let lastCpu = cpuSeconds();
let lastYield = lastReport;

// The loop. Nothing in it waits: every call returns at once, with data or with EAGAIN.
while (accepting || connections.size > 0) {
  passes++;
  if (accepting) acceptAll();
  for (const connection of connections) serve(connection);

  const now = performance.now();
  // Let the event loop run now and then, or Ctrl-C would never be noticed. Not every pass:
  // even setTimeout(0) sleeps a millisecond or so, and this loop is meant to spin.
  if (now - lastYield >= 20) {
    await new Promise((resolve) => setTimeout(resolve, 0));
    lastYield = performance.now();
  }
  if (now - lastReport >= 1000) {
    const cpu = cpuSeconds();
    const share = (cpu - lastCpu) / ((now - lastReport) / 1000);
    console.log(
      `CPU ${Math.round(share * 100)}% of a core, ${passes} passes in ` +
        `${((now - lastReport) / 1000).toFixed(2)} s, ${connections.size} connections, ` +
        `echoed ${echoed} bytes`,
    );
    [lastReport, lastCpu, passes] = [now, cpu, 0];
  }
}
console.log(`Echoed ${echoed} bytes in all; no connection left, exiting`);
