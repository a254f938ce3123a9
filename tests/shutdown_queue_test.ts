/**
 * A shutdown serves what the kernel already accepted: connections queued on
 * the listener when it stops (a load balancer handed them over before it saw
 * the server go) get their echo, instead of the reset the listener's close
 * would give them; and on the epoll backend, what the kernel already holds
 * of an open connection is read and answered before it closes.
 *
 * The clients are libc sockets: a blocking connect to loopback completes in
 * the call, so a connection is in the listener's queue, with its data sent,
 * before the server's event loop has had a turn.
 */

import { assertEquals } from "@std/assert";
import { serveEcho } from "../src/echo/serve.ts";
import { isLibc, loadLibc } from "../src/libc/_libc.ts";
import { encodeSockaddr } from "../src/sockets/_address.ts";
import { getPoller } from "../src/poll/_poller.ts";
import { decode, encode, waitFor } from "./_helpers.ts";

const found = loadLibc();
const libc = isLibc(found) ? found : null;
const MSG_DONTWAIT = 0x40;
const EAGAIN = 11;
const ignore = libc === null || typeof getPoller() === "string";

/** A connected libc socket to `port` that has sent `text`. */
function connectAndSend(port: number, text: string): number {
  const { symbols, constants } = libc!;
  const fd = symbols.socket(constants.AF_INET, constants.SOCK_STREAM, 0);
  const address = encodeSockaddr(constants, "127.0.0.1", port)!;
  assertEquals(symbols.connect(fd, address, address.length), 0);
  const data = encode(text);
  assertEquals(symbols.send(fd, data, BigInt(data.length), 0), data.length);
  return fd;
}

/** Reads from `fd` without blocking until the end of input; the text, or "reset". */
async function answerOf(fd: number): Promise<string> {
  const buffer = new Uint8Array(1024);
  let text = "";
  let ended = false;
  await waitFor(() => {
    const n = libc!.symbols.recv(fd, buffer, 1024n, MSG_DONTWAIT);
    if (n > 0) text += decode(buffer.subarray(0, n));
    else if (n === 0) ended = true;
    else if (libc!.errno() !== EAGAIN) {
      text = "reset";
      ended = true;
    }
    return ended;
  }, "the answer and the end of input");
  return text;
}

Deno.test({
  name: "shutdown (epoll): connections still queued on the listener are served, not reset",
  ignore,
  async fn() {
    const server = serveEcho({ port: 0, backend: "epoll" });
    const fds = [0, 1, 2, 3].map((i) => connectAndSend(server.addr.port, `queued ${i}`));
    // No await since they connected: the server has accepted none of them yet.
    assertEquals(server.counters.accepted, 0);
    const finished = server.shutdown();
    const answers = await Promise.all(fds.map(answerOf));
    await finished;
    for (const fd of fds) libc!.symbols.close(fd);
    assertEquals(answers, [0, 1, 2, 3].map((i) => `queued ${i}`));
    assertEquals(server.counters.accepted, 4);
  },
});

Deno.test({
  name: "shutdown (epoll): what an open connection sent just before is read and answered",
  ignore,
  async fn() {
    const server = serveEcho({ port: 0, backend: "epoll" });
    const fd = connectAndSend(server.addr.port, "first");
    assertEquals(await firstAnswer(fd), "first");
    // Sent, in the kernel, but the server's loop has not seen it when it shuts down.
    const last = encode("last words");
    libc!.symbols.send(fd, last, BigInt(last.length), 0);
    const finished = server.shutdown();
    assertEquals(await answerOf(fd), "last words");
    await finished;
    libc!.symbols.close(fd);
    assertEquals(server.counters.bytesReceived, "firstlast words".length);
  },
});

/** The first bytes `fd` receives. */
async function firstAnswer(fd: number): Promise<string> {
  const buffer = new Uint8Array(1024);
  let text = "";
  await waitFor(() => {
    const n = libc!.symbols.recv(fd, buffer, 1024n, MSG_DONTWAIT);
    if (n > 0) text = decode(buffer.subarray(0, n));
    return text !== "";
  }, "the first answer");
  return text;
}

for (const backend of ["epoll", "deno"] as const) {
  Deno.test({
    name:
      `shutdown (${backend}): a connection that has sent nothing yet gets a moment to, and its answer`,
    ignore: backend === "epoll" && ignore,
    async fn() {
      const server = serveEcho({ port: 0, backend, proxyProtocol: true });
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
      await waitFor(() => server.connections === 1, "the server to accept it");
      // The stop begins before its first bytes (as a load balancer's connection may).
      const finished = server.shutdown();
      await conn.write(encode("PROXY TCP4 192.0.2.7 198.51.100.1 40001 8888\r\nlate but here"));
      const answer = new Uint8Array(64);
      let got = "";
      for (let n; (n = await conn.read(answer).catch(() => null)) !== null;) {
        got += decode(answer.subarray(0, n));
      }
      conn.close();
      await finished;
      assertEquals(got, "late but here");
      assertEquals(server.counters.proxyRefused, 0);
    },
  });
}
